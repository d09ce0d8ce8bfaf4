"""The sweep's processes: a command line the W&B agent runs starts `textcls` as it would, and
benchmarks/sweep_local.py runs a small search whose best config then trains."""

from __future__ import annotations

import csv
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import labelled_rows, write_rows
from multilabel_data import COLUMNS, tag_files
from sweep_commands import SWEEP, agent_command, get_dotted, sample, sweep_parameters

from textcls.cli import main

pytest.importorskip("wandb.sdk.launch.sweeps.utils")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    return yaml.safe_load(SWEEP.read_text())


@pytest.mark.slow
def test_agent_command_runs_as_a_process(sweep, tmp_path):
    values = sample(sweep_parameters(SWEEP), random.Random(7))
    command = agent_command(sweep, values)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [*command, "--print_config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-2000:]}"
    printed = yaml.safe_load(result.stdout)
    assert get_dotted(printed, "model.optimizer.init_args.lr") == pytest.approx(values["model.optimizer.init_args.lr"])
    assert printed["trainer"]["logger"]["class_path"] == "textcls.tracking.WandbLogger"


@pytest.mark.slow
def test_sweep_local_writes_trials_and_a_best_config_that_trains(tmp_path, monkeypatch):
    train = write_rows(tmp_path / "train.csv", labelled_rows(80))
    out = tmp_path / "search"
    search = [
        sys.executable,
        "benchmarks/sweep_local.py",
        "--out",
        str(out),
        "--trials",
        "3",
        "--epochs",
        "2",
        "--limit-train-batches",
        "2",
        "--startup-trials",
        "1",
        "--data.train_file",
        str(train),
    ]
    result = subprocess.run(search, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [t["number"] for t in trials] == ["0", "1", "2"]
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    for name in sweep_parameters(SWEEP):
        assert name in trials[0]
    best = yaml.safe_load((out / "best.yaml").read_text())
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    winner = max(complete, key=lambda t: float(t["val_acc"]))
    assert best["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(float(winner["model.optimizer.init_args.lr"]))
    assert best["data"]["train_file"] == str(train)

    # the best config trains (in-process: the script above was the process under test)
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(out / "best.yaml"), "--config", str(ROOT / "configs/debug/fast.yaml"),
          "--runs_root", str(tmp_path / "runs")])  # fmt: skip


@pytest.mark.slow
def test_sweep_local_searches_macro_f1_on_multi_label_data(tmp_path, monkeypatch):
    import sweep_local  # benchmarks/, on the path through tests/sweep_commands.py

    files = tag_files(tmp_path / "data")
    monkeypatch.chdir(ROOT)
    out = tmp_path / "search"
    sweep_local.main(
        ["--out", str(out), "--trials", "2", "--epochs", "2", "--limit-train-batches", "3", "--startup-trials", "1",
         "--data.train_file", str(files["train"]), "--data.val_file", str(files["val"]), *COLUMNS]
    )  # fmt: skip
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 2 and all(0 <= float(t["val_f1_macro"]) <= 1 for t in trials if t["state"] == "COMPLETE")
    assert "val/f1_macro" in (out / "best.yaml").read_text().splitlines()[1]
