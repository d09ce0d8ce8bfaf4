"""Small labelled files for tests, written into a test's tmp_path (tests never download anything)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest


def _console_script() -> str:
    """The `textcls` script installed with the package this interpreter imports: next to the interpreter in a venv
    or conda env, else where the installer put it (the distribution's RECORD lists it, e.g. ~/.local/bin)."""
    beside = Path(sys.executable).parent / "textcls"
    if beside.is_file():
        return str(beside)
    for file in metadata.distribution("textcls").files or []:
        if file.name in ("textcls", "textcls.exe") and file.parent.name in ("bin", "Scripts"):
            return str(Path(str(file.locate())).resolve())
    raise RuntimeError("the textcls console script is not installed for this interpreter: pip install -e '.[dev]'")


#: the installed console script of the environment running the tests (tests run it as a real subprocess)
TEXTCLS = _console_script()

POSITIVE = ["great", "good", "superb", "lovely", "fine"]
NEGATIVE = ["awful", "bad", "dull", "poor", "boring"]


def labelled_rows(n: int, labels: tuple[str, str] = ("neg", "pos"), prefix: str = "") -> list[dict[str, str]]:
    """`n` texts whose label is decided by one sentiment word; `prefix` lets tests make split-specific words."""
    rows = []
    for i in range(n):
        positive = i % 2 == 1
        word = (POSITIVE if positive else NEGATIVE)[i % 5]
        rows.append({"text": f"{prefix}the film was {word} number{i % 7}", "label": labels[int(positive)]})
    return rows


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows as CSV, TSV or JSON Lines, chosen by the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writeheader()
        writer.writerows(rows)
    return path


def one_error_line(result: subprocess.CompletedProcess[str], returncode: int = 2) -> str:
    """The single `error:` line of a CLI run that must fail cleanly: that exit status, no traceback, one message."""
    assert result.returncode == returncode, result.stderr[-3000:]
    return _single_error_line(result.stderr)


def main_error_line(capsys: Any, argv: list[str], returncode: int = 2) -> str:
    """The same contract in-process (`textcls.cli.main`, stderr read through capsys): no interpreter start-up."""
    from textcls.cli import main

    capsys.readouterr()  # drop what earlier steps of the test printed
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == returncode, err[-3000:]
    return _single_error_line(err)


def _single_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def slow_build(cache: Path, marker_dir: Path, key: str = "train-same-key") -> None:
    """Publish `key` in `cache` through the cache's lock with a build slow enough for rivals to meet it; every build
    that really ran leaves a marker file named after its process."""
    import os
    import time
    import warnings

    from textcls.data.cache import get_or_build

    def build(out: Path) -> None:
        (marker_dir / f"built-by-{os.getpid()}").touch()
        time.sleep(0.5)
        (out / "meta.json").write_text("{}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rebuild of a damaged entry warns; the markers are what is checked
        get_or_build(cache, key, build)


def race_three_builders(cache: Path, marker_dir: Path) -> list[int | None]:
    """Three forked processes build the same key at once; their exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=slow_build, args=(cache, marker_dir)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    return [worker.exitcode for worker in workers]


def last_metrics(run: Path) -> dict[str, float]:
    """The last value of every metric in a run directory's metrics.csv."""
    out: dict[str, float] = {}
    with (run / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            out.update({k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")})
    return out
