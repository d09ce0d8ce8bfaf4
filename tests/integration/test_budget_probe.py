"""studies/budget_probe.py: one run of a study setting at another budget, on a small generated SST-2 stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import labelled_rows, write_rows

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "studies" / "budget_probe.py"


def probe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(PROBE), "--data-root", str(tmp_path / "data"), "--runs-root", str(tmp_path / "runs"),
               "--workload", "sst2-textcnn", "--optimizer", "adam", *args]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_probe_trains_the_setting_at_the_given_budget_and_says_where_its_best_point_is(tmp_path):
    for split, n in (("train", 240), ("dev", 60), ("test", 60)):
        rows = [{"label": r["label"], "text": r["text"]} for r in labelled_rows(n)]  # the harness's column order
        write_rows(tmp_path / "data" / "sst2" / f"{split}.csv", rows)
    done = probe(tmp_path, "--setting", "k-8", "--steps", "56")  # the study's SST-2 TextCNN evaluates every 28 steps
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    curve = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))["dev_by_step"]
    assert [step for step, _ in curve] == [28, 56]
    record = json.loads((tmp_path / "runs" / "sst2-textcnn@56" / "adam" / "k-8" / "seed0" / "result.json").read_text())
    assert record["budget"] == 56 and record["lr"] == 0.00215
    best = "the last evaluation" if record["best_step"] == 56 else "before the last evaluation (56)"
    assert f"at step {record['best_step']}, {best}" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--setting", "k-8", "--steps", "10"), "--steps must be at least the study's evaluation interval"),
        (("--setting", "lr0.001", "--steps", "56"), "is not a setting tag"),
        (("--setting", "k-8_", "--steps", "56"), "is not a setting tag"),
    ],
)
def test_bad_arguments_get_one_line_and_no_run(tmp_path, args, message):
    done = probe(tmp_path, *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_run_that_fails_says_why_and_exits_1(tmp_path):
    done = probe(tmp_path, "--setting", "k-8", "--steps", "56")  # no data set under --data-root
    assert done.returncode == 1 and "the run failed:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "sst2" in done.stderr
    assert not list((tmp_path / "runs").glob("*/*/*/seed*/result.json")), "a broken run is not kept as a result"
