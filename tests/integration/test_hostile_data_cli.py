"""Hostile data and a hostile cache through `textcls fit`: one `error:` line naming the file (and line), exit 2, no
traceback, no run directory and no cache entry left; a damaged cache entry is rebuilt with one warning line.

In-process (`textcls.cli.main`) except where the process's own stderr is the subject: pyarrow's C++ layer and
Python's "Exception ignored" hook write there directly.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest
from helpers import TEXTCLS, labelled_rows, one_error_line

from textcls.cli import main

ROOT = Path(__file__).resolve().parents[2]
ROWS = labelled_rows(300)
CSV = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in ROWS)
TINY = [
    "--config",
    str(ROOT / "configs" / "textcnn.yaml"),
    "--config",
    str(ROOT / "configs" / "debug" / "fast.yaml"),
    "--model.model.init_args.embedding_dim",
    "8",
]


def _fit(tmp_path: Path, *args: str) -> list[str]:
    return ["fit", *TINY, "--runs_root", str(tmp_path / "runs"), "--data.cache_dir", str(tmp_path / "cache"), *args]


def _label_first_open_quote(path: Path) -> None:
    lines = [f"{r['label']},{r['text']}\n" for r in ROWS]
    lines[99] = f'{ROWS[99]["label"]},"{ROWS[99]["text"]}\n'  # physical line 101
    path.write_text("label,text\n" + "".join(lines), encoding="utf-8")


def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content.encode() if isinstance(content, str) else content)


CASES = {
    "open-quote": ("t.csv", _label_first_open_quote, ["line 101", "never closed"]),
    "truncated-gz": (
        "t.csv.gz",
        lambda p: _write(p, gzip.compress(os.urandom(90_000).hex().encode())[:40_000]),
        ["truncated"],
    ),
    "jsonl-bad-utf8-label": (
        "t.jsonl",
        lambda p: _write(
            p, "".join(json.dumps(r) + "\n" for r in ROWS).encode() + b'{"text": "a", "label": "p\xf6s"}\n'
        ),
        ["line 301", "not UTF-8"],
    ),
    "ragged-after-multiline": (
        "t.csv",
        lambda p: _write(p, "text,label\n" + "".join(f'"a\nb\nc {i}",{"ab"[i % 2]}\n' for i in range(300)) + "x,y,z\n"),
        ["line 902", "expected 2 columns, found 3"],
    ),
}


def _assert_one_error_line(err: str, *parts: str) -> str:
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    joined = " ".join(err[err.index("error:") :].split())  # rich may wrap the one message over terminal lines
    for part in parts:
        assert part in joined, joined
    return joined


def _nothing_left(tmp_path: Path) -> None:
    assert not any((tmp_path / "runs").glob("*/*")), "a failed run must not leave a run directory"
    cache = tmp_path / "cache"
    assert not [p for p in cache.glob("*") if p.is_dir()] if cache.exists() else True


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_training_file_is_one_error_line(tmp_path, capsys, case):
    name, make, parts = CASES[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(SystemExit) as exit_info:
        main(_fit(tmp_path, "--data.train_file", str(path)))
    assert exit_info.value.code == 2
    _assert_one_error_line(capsys.readouterr().err, str(path), *parts)
    _nothing_left(tmp_path)


def test_a_duplicate_header_with_a_val_file_blames_the_training_file(tmp_path, capsys):
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    _write(train, "label,text,text\n" + "".join(f"{r['label']},{r['text']},x\n" for r in ROWS))
    _write(val, "label,text\n" + "".join(f"{r['label']},{r['text']}\n" for r in ROWS[:20]))
    with pytest.raises(SystemExit) as exit_info:
        main(_fit(tmp_path, "--data.train_file", str(train), "--data.val_file", str(val)))
    assert exit_info.value.code == 2
    error = _assert_one_error_line(capsys.readouterr().err, str(train), "'text' appears 2 times")
    assert str(val) not in error


def test_a_cache_dir_that_is_a_file_is_one_error_line(tmp_path, capsys):
    train, blocker = tmp_path / "t.csv", tmp_path / "blocker"
    _write(train, CSV)
    blocker.write_text("keep me")
    args = _fit(tmp_path, "--data.train_file", str(train))
    args[args.index("--data.cache_dir") + 1] = str(blocker)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    _assert_one_error_line(capsys.readouterr().err, str(blocker), "not a directory", "--data.cache_dir")
    assert blocker.read_text() == "keep me" and not any((tmp_path / "runs").glob("*/*"))


@pytest.mark.slow
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning_line(tmp_path, capsys):
    train = tmp_path / "t.csv"
    _write(train, CSV)
    main(_fit(tmp_path, "--data.train_file", str(train)))
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    arrow = entry / "train.arrow"
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    (entry / "meta.json").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(_fit(tmp_path, "--data.train_file", str(train)))  # exits normally
    damaged = [w for w in caught if "damaged" in str(w.message)]
    assert len(damaged) == 1 and str(entry) in str(damaged[0].message), [str(w.message) for w in caught]
    shown = warnings.formatwarning(damaged[0].message, damaged[0].category, damaged[0].filename, damaged[0].lineno)
    assert shown.count("\n") == 1, shown  # Python prints it as one line, without a source line under it
    assert "Traceback" not in capsys.readouterr().err
    assert (entry / "meta.json").is_file() and arrow.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_binary_bytes_deep_in_a_csv_print_no_third_party_traceback(tmp_path):
    """pyarrow called its invalid-row handler with the undecodable row, and Python printed "Exception ignored ...
    Traceback" to stderr; the bytes come after the first-bytes check, so the CSV reader itself meets them."""
    path = tmp_path / "t.csv"
    text = CSV * 10  # past the first 64 KB that are checked before parsing
    _write(path, text.encode() + b"\xcc\x9f\xff\xfe,\x81,\x00\x99\n" * 50)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    command = [TEXTCLS, *_fit(tmp_path, "--data.train_file", str(path))]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]
    error = one_error_line(result)
    stderr = " ".join(result.stderr.split())
    assert str(path) in stderr and f"line {text.count(chr(10)) + 1}" in stderr, error
    _nothing_left(tmp_path)
