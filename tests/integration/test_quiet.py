"""Quiet by default: the default `fit`, `test` and `predict`, a 2-process ddp_cpu fit and a W&B fit print none of the
warnings and tips a user would learn to ignore (and so miss a real one among them)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import labelled_rows, write_rows

from textcls.cli import main

ROOT = Path(__file__).resolve().parents[2]

# The exact texts, as Lightning, torch and W&B print them.
NOISE = {
    "checkpoint dirpath": "The dirpath has changed from",
    "sync_dist": "It is recommended to use `self.log(",
    "litlogger tip": "try installing [litlogger]",
    "litmodels tip": "💡 Tip:",
    "FLOPs": "Total FLOPs: 0",
    "LeafSpec": "`isinstance(treespec, LeafSpec)` is deprecated",
    "CSV log dir": "exists and is not empty. Previous log files in this directory will be deleted",
    "W&B anonymous": "The anonymous setting has no effect",
}
TINY = ["--model.model.init_args.embedding_dim", "8", "--trainer.max_epochs", "1"]


def noise_in(text: str) -> list[str]:
    return [name for name, message in NOISE.items() if message in text]


class Collect(logging.Handler):
    """Lightning's log lines as they leave its loggers (past any filter on them), whatever stream pytest swapped in."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lightning_log():
    handler = Collect()
    logger = logging.getLogger("pytorch_lightning")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_rows(tmp_path / "train.csv", labelled_rows(120)),
        "test": write_rows(tmp_path / "test.csv", labelled_rows(30, prefix="t")),
    }


def run(argv: list[str], capsys, recwarn, log: list[str]) -> str:
    """Everything one in-process command printed, warned or logged."""
    recwarn.clear()
    log.clear()
    main(argv)
    out, err = capsys.readouterr()
    warned = "\n".join(str(w.message) for w in recwarn)
    return "\n".join([out, err, warned, *log])


@pytest.mark.slow
def test_default_fit_test_and_predict_print_no_known_noise(tmp_path, data, capsys, recwarn, lightning_log):
    runs = str(tmp_path / "runs")
    fitted = run(
        ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(data["train"]),
         "--data.test_file", str(data["test"]), "--runs_root", runs, *TINY],
        capsys, recwarn, lightning_log,
    )  # fmt: skip
    # What was captured is the whole output: the model summary, Lightning's own log lines and the test metrics.
    assert "Trainable params" in fitted and "GPU available" in fitted and "test/acc" in fitted, fitted[-3000:]
    assert noise_in(fitted) == [], fitted[-3000:]

    [run_dir] = (tmp_path / "runs" / "mlp").iterdir()
    for subcommand, ckpt, data_flag in (
        ("test", "last.ckpt", "--data.test_file"),  # last.ckpt carries the checkpoint callback's state
        ("validate", "last.ckpt", "--data.val_file"),
        ("predict", "best.ckpt", "--data.predict_file"),
    ):
        printed = run(
            [subcommand, "--ckpt_path", str(run_dir / "checkpoints" / ckpt), data_flag, str(data["test"]),
             "--runs_root", runs],
            capsys, recwarn, lightning_log,
        )  # fmt: skip
        assert "Restoring states from the checkpoint" in printed, printed[-3000:]
        assert noise_in(printed) == [], (subcommand, printed[-3000:])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_process_ddp_cpu_fit_prints_no_known_noise(tmp_path, data):
    """A real 2-process run (the processes are the subject), fit plus the test after it, outside pytest's filters."""
    command = [
        sys.executable, "-m", "textcls", "fit", "--config", "configs/mlp.yaml", "--config",
        "configs/trainer/ddp_cpu.yaml", "--data.train_file", str(data["train"]), "--data.test_file",
        str(data["test"]), "--data.batch_size", "32", "--runs_root", str(tmp_path / "runs"), *TINY,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360)
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed[-4000:]
    assert "Starting with 2 processes" in printed and "test/acc" in printed, printed[-4000:]
    assert noise_in(printed) == [], printed[-4000:]


@pytest.mark.slow
def test_wandb_fit_prints_no_known_noise(tmp_path, data, capsys, recwarn, lightning_log, monkeypatch):
    pytest.importorskip("wandb")
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing leaves the machine
    monkeypatch.setenv("WANDB_X_DISABLE_UPDATE_CHECK", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    printed = _wandb_fit(tmp_path, data, capsys, recwarn, lightning_log)
    [run_dir] = (tmp_path / "runs" / "mlp").iterdir()
    assert (run_dir / "metrics.csv").is_file() and any((run_dir / "wandb").glob("offline-run-*")), printed[-3000:]
    assert "wandb" in printed, printed[-3000:]  # W&B's own lines were captured
    assert noise_in(printed) == [], printed[-3000:]


def _wandb_fit(tmp_path, data, capsys, recwarn, lightning_log) -> str:
    return run(
        ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--config", str(ROOT / "configs/logger/wandb.yaml"),
         "--data.train_file", str(data["train"]), "--runs_root", str(tmp_path / "runs"), "--test_after_fit", "false",
         "--trainer.enable_progress_bar", "false", *TINY],
        capsys, recwarn, lightning_log,
    )  # fmt: skip
