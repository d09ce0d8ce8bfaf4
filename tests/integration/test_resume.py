"""Crash-proof training, end to end with real `textcls` processes: SIGKILL at three points then `--ckpt_path last`,
SIGTERM / Ctrl-C, a non-finite loss, and run-to-run determinism. Each resumed run must end bit-identical (CPU) to one
that was never interrupted: weights, optimizer state, LR schedule, metrics, and the batches it saw step by step."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TEXTCLS, labelled_rows, write_rows

from textcls.cli import main
from textcls.resume import resume_hint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# 200 rows at batch 16: 13 steps per epoch, 26 in all; `last` also every 5 steps inside an epoch.
EPOCHS, STEPS_PER_EPOCH = 2, 13


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_rows(root / "train.csv", labelled_rows(200)),
        "val": write_rows(root / "val.csv", labelled_rows(41, prefix="v")),
    }


def fit_args(runs: Path, data: dict, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(ROOT / "configs/textcnn.yaml"),
        "--data.train_file",
        str(data["train"]),
        "--data.val_file",
        str(data["val"]),
        "--runs_root",
        str(runs),
        "--trainer.max_epochs",
        str(EPOCHS),
        "--model.model.init_args.num_filters",
        "8",
        "--model.model.init_args.embedding_dim",
        "16",
        "--data.batch_size",
        "16",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.deterministic",
        "true",
        "--test_after_fit",
        "false",
        "--checkpoint.last_every_n_train_steps",
        "5",
        *extra,
    ]


def fit(runs: Path, data: dict, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess:
    args = fit_args(runs, data, *extra)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}  # the test-only callbacks in tests/training_probes.py
    return subprocess.run([TEXTCLS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def probe(name: str, **init_args) -> list[str]:
    args = [f"--trainer.callbacks+=training_probes.{name}"]
    for key, value in init_args.items():
        args += [f"--trainer.callbacks.{key}", str(value)]
    return args


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in (runs / "textcnn").iterdir() if p.is_dir())


def final_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def epoch_metrics(run: Path) -> dict[int, dict[str, str]]:
    """Per epoch, every epoch-level value in metrics.csv (strings: compared exactly)."""
    out: dict[int, dict[str, str]] = {}
    with (run / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            values = {k: v for k, v in row.items() if v and k not in ("epoch", "step") and not k.endswith("_step")}
            if not row["epoch"]:
                continue  # the learning-rate monitor's rows
            out.setdefault(int(row["epoch"]), {}).update(values)
    return out


def trace(path: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, path.read_text().splitlines())}


def assert_same_training(run: Path, reference: Path) -> None:
    got, want = final_state(run), final_state(reference)
    assert got["global_step"] == want["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for key, tensor in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], tensor), f"{key} differs from the uninterrupted run"
    got_opt, want_opt = got["optimizer_states"][0]["state"], want["optimizer_states"][0]["state"]
    assert got_opt.keys() == want_opt.keys()
    for i, state in want_opt.items():
        assert all(torch.equal(got_opt[i][k], v) for k, v in state.items()), "optimizer state differs"
    assert got["lr_schedulers"] == want["lr_schedulers"]
    assert epoch_metrics(run)[EPOCHS - 1] == epoch_metrics(reference)[EPOCHS - 1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """One uninterrupted run, with a trace of every step (rows of the batch, loss, learning rate)."""
    runs = tmp_path_factory.mktemp("reference")
    result = fit(runs, data, *probe("TraceSteps", path=runs / "trace.jsonl"))
    assert result.returncode == 0, result.stderr[-3000:]
    return {"run": run_dirs(runs)[0], "trace": trace(runs / "trace.jsonl")}


KILL_POINTS = {
    "mid_epoch": {"phase": "train", "step": 18},  # epoch 1, 5 batches in; last.ckpt is from step 15 (2 batches in)
    "between_epochs": {"phase": "epoch_start", "epoch": 1},  # after epoch 0's checkpoint, before epoch 1's batches
    "during_validation": {"phase": "validation", "epoch": 0},  # last.ckpt from step 10, three batches before the end
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_last_matches_uninterrupted_run(point, tmp_path, data, reference):
    runs = tmp_path / "runs"
    killed = fit(runs, data, *probe("KillAt", **KILL_POINTS[point]))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [first] = run_dirs(runs)
    last = first / "checkpoints" / "last.ckpt"
    digest = hashlib.sha256(last.read_bytes()).hexdigest()
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < stopped_at < EPOCHS * STEPS_PER_EPOCH

    resumed = fit(runs, data, "--ckpt_path", "last", *probe("TraceSteps", path=tmp_path / "trace.jsonl"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    first_dir, second = run_dirs(runs)
    assert first_dir == first and hashlib.sha256(last.read_bytes()).hexdigest() == digest  # old run left alone
    assert_same_training(second, reference["run"])
    # The data order and the LR schedule continue where the checkpoint stopped, batch by batch.
    steps = trace(tmp_path / "trace.jsonl")
    assert min(steps) == stopped_at + 1 and max(steps) == EPOCHS * STEPS_PER_EPOCH
    for step, record in steps.items():
        expected = reference["trace"][step]
        assert (record["rows"], record["lr"], record["loss"]) == (expected["rows"], expected["lr"], expected["loss"])


def test_unbucketed_batches_also_resume_mid_epoch_in_order(tmp_path, data):
    """`--data.bucket false` (plain shuffled batches): the order is seeded per epoch, not drawn from the global RNG."""
    unbucketed = ("--data.bucket", "false")
    reference = fit(tmp_path / "ref", data, *unbucketed, *probe("TraceSteps", path=tmp_path / "ref.jsonl"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    runs = tmp_path / "runs"
    killed = fit(runs, data, *unbucketed, *probe("KillAt", **KILL_POINTS["mid_epoch"]))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = fit(runs, data, *unbucketed, "--ckpt_path", "last", *probe("TraceSteps", path=tmp_path / "trace.jsonl"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, steps = trace(tmp_path / "ref.jsonl"), trace(tmp_path / "trace.jsonl")
    assert min(steps) == 16 and max(steps) == EPOCHS * STEPS_PER_EPOCH
    assert all(record["rows"] == expected[step]["rows"] for step, record in steps.items())
    assert_same_training(run_dirs(runs)[1], run_dirs(tmp_path / "ref")[0])


@pytest.mark.parametrize("name,status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(name, status, tmp_path, data, reference):
    runs = tmp_path / "runs"
    stopped = fit(runs, data, *probe("SignalAt", step=7, signal_name=name))
    assert stopped.returncode == status, stopped.stderr[-3000:]
    [run] = run_dirs(runs)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    assert f"{name}: stopped at epoch 0, step 7" in stopped.stderr
    assert f"Resume with: cd {ROOT} && {TEXTCLS} fit" in stopped.stderr  # runnable in a fresh shell
    assert str(run / "checkpoints" / "last.ckpt") in stopped.stderr
    if name == "SIGTERM":
        resumed = fit(runs, data, "--ckpt_path", "last")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert_same_training(run_dirs(runs)[1], reference["run"])


def test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, data):
    runs = tmp_path / "runs"
    result = fit(runs, data, *probe("PoisonStep", step=7))
    assert result.returncode == 3, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "non-finite training loss (nan) at epoch 0, global step 7, batch 7 of the epoch" in error[0]
    assert "--model.nonfinite_loss skip" in error[0]
    [run] = run_dirs(runs)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 5  # written before the bad batch, never overwritten
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())


def test_nonfinite_loss_skip_mode_skips_and_counts_the_batch(tmp_path, data):
    runs = tmp_path / "runs"
    result = fit(runs, data, "--model.nonfinite_loss", "skip", *probe("PoisonStep", step=7))
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = run_dirs(runs)
    metrics = epoch_metrics(run)
    assert [float(metrics[e]["train/skipped_batches"]) for e in range(EPOCHS)] == [1.0] * EPOCHS
    state = final_state(run)
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point())


def test_two_runs_with_the_same_seed_give_identical_metrics(tmp_path, data, reference):
    runs = tmp_path / "runs"
    result = fit(runs, data)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = run_dirs(runs)
    assert epoch_metrics(run) == epoch_metrics(reference["run"])
    assert_same_training(run, reference["run"])


def test_ckpt_path_last_without_a_previous_run_is_one_clear_error(tmp_path, data, monkeypatch, capsys):
    # In-process: the same command line as fit() above; the error contract is the CLI's, not the process's.
    monkeypatch.chdir(tmp_path)
    args = fit_args(tmp_path / "runs", data, "--ckpt_path", "last")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip().startswith("error: --ckpt_path last found no run of experiment"), err[-2000:]
    assert "Traceback" not in err


# From tests/unit/test_resume_hint.py: the shell and the console script are the subject, so it is a process here.
def test_the_printed_hint_runs_in_a_fresh_shell_without_the_venv_on_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    last = Path("runs/mlp/20260101-000000/checkpoints/last.ckpt")
    hint = resume_hint([TEXTCLS, "--help"], last)  # --help: the real parser answers, nothing trains
    fresh = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no venv, no PYTHONPATH
    result = subprocess.run(["/bin/sh", "-c", hint], env=fresh, cwd="/", capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout and "fit" in result.stdout
    assert os.path.isabs(shlex.split(hint)[3])
