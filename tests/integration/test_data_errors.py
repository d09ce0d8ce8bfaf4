"""Every bad input through `textcls fit`: one `error:` line naming the file and the place, exit 2, no traceback, no
cache entry and no run directory left behind.

In-process (`textcls.cli.main`): the contract is the CLI's, not the interpreter's. The offline hub case runs the real
console script, because the Hugging Face libraries read their offline switches and cache paths once, at import.
(Missing file, missing column and empty file are covered by tests/integration/test_cli.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import TEXTCLS, labelled_rows, main_error_line, one_error_line, write_rows

ROOT = Path(__file__).resolve().parents[2]
TEXTCNN = str(ROOT / "configs" / "textcnn.yaml")


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """case -> (extra arguments, substrings the one error line must contain)."""
    good = str(write_rows(tmp / "good.csv", labelled_rows(40)))
    (tmp / "adir.csv").mkdir()
    (tmp / "latin1.csv").write_bytes(b"text,label\ngood film,pos\nna\xefve film,neg\n")
    jsonl = tmp / "bad.jsonl"
    jsonl.write_text(json.dumps({"text": "fine", "label": "a"}) + "\n{text: no quotes}\n", encoding="utf-8")
    return {
        "directory": (["--data.train_file", str(tmp / "adir.csv")], ["adir.csv", "is a directory"]),
        "not-utf8": (["--data.train_file", str(tmp / "latin1.csv")], ["latin1.csv", "line 3", "not UTF-8"]),
        "ragged-row": (
            ["--data.train_file", str(_csv(tmp / "ragged.csv", "text,label\na film,pos\nb, film,neg\nc,pos\n"))],
            ["ragged.csv", "line 3", "expected 2 columns, found 3"],
        ),
        "header-only": (
            ["--data.train_file", str(_csv(tmp / "header.csv", "text,label\n"))],
            ["header.csv", "no data rows"],
        ),
        "empty-text-error": (
            [
                "--data.train_file",
                str(_csv(tmp / "blank.csv", "text,label\ngood,pos\n   ,neg\nbad,neg\n")),
                "--data.empty_text",
                "error",
            ],
            ["blank.csv", "data row 2", "text is empty"],
        ),
        "missing-label": (
            ["--data.train_file", str(_csv(tmp / "nolabel.csv", "text,label\ngood,pos\nbad,\nok,neg\n"))],
            ["nolabel.csv", "data row 2", "label is missing"],
        ),
        "one-class": (
            ["--data.train_file", str(write_rows(tmp / "one.csv", labelled_rows(20, labels=("same", "same"))))],
            ["one.csv", "only one class", "'same'"],
        ),
        "unseen-val-label": (
            [
                "--data.train_file",
                good,
                "--data.val_file",
                str(write_rows(tmp / "val.csv", labelled_rows(6, labels=("neg", "neutral")))),
            ],
            ["val.csv", "never seen in the training data: 'neutral'"],
        ),
        "unseen-test-label": (
            [
                "--data.train_file",
                good,
                "--data.test_file",
                str(write_rows(tmp / "test.csv", labelled_rows(6, labels=("meh", "pos")))),
            ],
            ["test.csv", "never seen in the training data: 'meh'"],
        ),
        "val-columns-differ": (
            [
                "--data.train_file",
                good,
                "--data.val_file",
                str(_csv(tmp / "valcols.csv", "text,label,extra\ngood,pos,1\nbad,neg,2\n")),
            ],
            ["valcols.csv", "has columns text, label, extra but the training file has text, label"],
        ),
        "jsonl-not-json": (["--data.train_file", str(jsonl)], ["bad.jsonl", "line 2", "not valid JSON"]),
        "fasttext-no-prefix": (
            [
                "--data.train_file",
                str(_csv(tmp / "ft.txt", "__label__pos good film\nbad film\n__label__neg awful\n")),
                "--data.format",
                "fasttext",
            ],
            ["ft.txt", "line 2", "__label__"],
        ),
        "unknown-format": (["--data.train_file", good, "--data.format", "xlsx"], ["--data.format", "xlsx"]),
        "max-length-not-positive": (["--data.train_file", good, "--data.max_length", "-5"], ["--data.max_length -5"]),
        "val-fraction-1": (["--data.train_file", good, "--data.val_fraction", "1.0"], ["--data.val_fraction 1.0"]),
        "batch-size-0": (["--data.train_file", good, "--data.batch_size", "0"], ["--data.batch_size 0"]),
        "hub-offline": (
            ["--data.dataset", "fancyzhx/ag_news"],
            ["could not load hub dataset 'fancyzhx/ag_news'", "--data.train_file"],
        ),
    }


def _start(args: list[str], tmp: Path, cache: Path) -> subprocess.Popen:
    env = dict(os.environ)
    # Nothing may be downloaded in tests: the hub case must fail the way an offline machine does.
    env.update(XDG_CACHE_HOME=str(cache), HF_HOME=str(tmp / "hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = [TEXTCLS, "fit", "--config", TEXTCNN, "--runs_root", str(tmp / "runs"), *args]
    return subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", autouse=True)
def console_runs(tmp_path_factory):
    """The console-script cases start with the module and run on the other core while the in-process cases run."""
    runs = {}
    for case in SUBPROCESS_CASES:
        tmp = tmp_path_factory.mktemp(case)
        args, expected = _cases(tmp)[case]
        runs[case] = (tmp, expected, _start(args, tmp, tmp / "xdg-cache"))
    yield runs
    for _, _, process in runs.values():
        process.kill()
        process.wait()


CASES = [
    "directory",
    "not-utf8",
    "ragged-row",
    "header-only",
    "empty-text-error",
    "missing-label",
    "one-class",
    "unseen-val-label",
    "unseen-test-label",
    "val-columns-differ",
    "jsonl-not-json",
    "fasttext-no-prefix",
    "unknown-format",
    "max-length-not-positive",
    "val-fraction-1",
    "batch-size-0",
]
SUBPROCESS_CASES = ["hub-offline"]


def _assert_nothing_left(tmp: Path, cache: Path) -> None:
    assert not any((tmp / "runs").glob("*/*")), "a failed run must not leave a run directory"
    trusted = [p.name for p in (cache / "textcls").glob("*") if p.is_dir() and ".tmp-" not in p.name]
    # A failing training file caches nothing; with a good training file only its own entry may exist.
    assert all(name.startswith("train-") for name in trusted), trusted


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_line_and_caches_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a stray relative write lands here, not in the checkout
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    args, expected = _cases(tmp_path)[case]
    error = main_error_line(capsys, ["fit", "--config", TEXTCNN, "--runs_root", str(tmp_path / "runs"), *args])
    for part in expected:
        assert part in error, error
    _assert_nothing_left(tmp_path, cache)


@pytest.mark.slow
@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_through_the_console_script(case, console_runs):
    tmp, expected, process = console_runs[case]
    stdout, stderr = process.communicate(timeout=300)
    error = one_error_line(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    for part in expected:
        assert part in error, error
    _assert_nothing_left(tmp, tmp / "xdg-cache")


def test_every_case_is_tested(tmp_path):
    assert sorted(_cases(tmp_path)) == sorted(CASES + SUBPROCESS_CASES)


@pytest.mark.slow
def test_a_5mb_row_is_truncated_and_trained_on(tmp_path, monkeypatch, capsys):
    from textcls.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rows = labelled_rows(30)
    rows[1]["text"] = "enormous " + "word " * 1_000_000  # ~5 MB in a single CSV field
    train = write_rows(tmp_path / "big.csv", rows)
    assert train.stat().st_size > 5_000_000
    fast = str(ROOT / "configs" / "debug" / "fast.yaml")
    main(["fit", "--config", TEXTCNN, "--runs_root", str(tmp_path / "runs"), "--data.train_file", str(train),
          "--data.batch_size", "64", "--config", fast])  # fmt: skip
    assert "Traceback" not in capsys.readouterr().err
