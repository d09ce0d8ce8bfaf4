"""W&B for real, offline and with no account: `textcls fit --config configs/logger/wandb.yaml`, then the run file read
back with tests/wandb_reader.py. No mocks; nothing leaves the machine (offline mode, or a closed loopback port)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import TEXTCLS, labelled_rows, write_rows
from wandb_reader import read_run, wait_until_finished

pytest.importorskip("wandb")

ROOT = Path(__file__).resolve().parents[2]
DUMMY_KEY = "textclsdummykey" + "0123456789abcdef0123456789"  # 40 characters, the shape of a real key
QUIET_WANDB = {
    "WANDB_X_DISABLE_UPDATE_CHECK": "true",  # no version check against PyPI
    "WANDB_ERROR_REPORTING": "false",  # no crash reports
    "WANDB_SILENT": "true",
}


def _fit(tmp_path: Path, wandb_env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    train = write_rows(data / "train.csv", labelled_rows(120))
    test = write_rows(data / "test.csv", labelled_rows(30))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(QUIET_WANDB, WANDB_API_KEY=DUMMY_KEY, WANDB_DIR=str(tmp_path / "wandb_dir"), **wandb_env)
    (tmp_path / "wandb_dir").mkdir()
    command = [
        TEXTCLS,
        "fit",
        "--config",
        "configs/textcnn.yaml",
        "--config",
        "configs/logger/wandb.yaml",
        "--data.train_file",
        str(train),
        "--data.test_file",
        str(test),
        "--data.batch_size",
        "16",
        "--model.optimizer.lr",
        "0.003",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--runs_root",
        str(tmp_path / "runs"),
        *extra,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _run_file(tmp_path: Path) -> Path:
    # Only offline runs: an online attempt that failed leaves W&B's own run-<stamp>-<id> folder behind as well.
    files = sorted((tmp_path / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    wait_until_finished(files[0])
    return files[0]


@pytest.fixture(scope="module")
def offline_fit(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wandb_offline")
    result = _fit(
        tmp_path,
        {"WANDB_MODE": "offline"},
        "--trainer.logger.init_args.tags=[ci, offline]",
        "--trainer.logger.init_args.watch=gradients",
        "--trainer.logger.init_args.watch_log_freq=1",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return tmp_path, result


@pytest.mark.slow
def test_offline_run_file_holds_resolved_config_and_val_acc_history(offline_fit):
    tmp_path, _ = offline_fit
    run = read_run(_run_file(tmp_path))
    config = run["config"]
    # The whole resolved LightningCLI config, under the keys a sweep uses, overrides included.
    assert config["model.optimizer.class_path"] == "torch.optim.Adam"
    assert config["model.optimizer.init_args.lr"] == 0.003
    assert config["data.batch_size"] == 16
    assert config["data.train_file"] == str(tmp_path / "data" / "train.csv")
    assert config["trainer.max_epochs"] == 2
    assert config["model.model.class_path"] == "textcls.models.TextCNN"
    assert list(run["run"].tags) == ["ci", "offline"]
    assert run["run"].project == "textcls"

    val = [row for row in run["history"] if "val/acc" in row]
    assert len(val) == 2  # one per epoch
    assert [row["trainer/global_step"] for row in val] == [2, 5]  # stepped on the global step, not W&B's counter
    assert all(0.0 <= row["val/acc"] <= 1.0 for row in val)
    assert any("train/loss_step" in row for row in run["history"])
    assert any(key.startswith("gradients/model.") for row in run["history"] for key in row)  # watch: gradients
    # The per-class report at the end of the test: a table and a confusion-matrix chart.
    assert any("test/per_class" in row and "test/confusion_matrix_table" in row for row in run["history"])
    assert "test/acc" in run["summary"]


@pytest.mark.slow
def test_run_directory_keeps_csv_metrics_and_prints_per_class_table(offline_fit):
    tmp_path, result = offline_fit
    (run_dir,) = (tmp_path / "runs" / "textcnn").iterdir()
    assert (run_dir / "metrics.csv").is_file()  # the CSV logger stays on next to W&B
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert [logger["class_path"] for logger in saved["trainer"]["logger"]] == [
        "pytorch_lightning.loggers.CSVLogger",
        "textcls.tracking.WandbLogger",
    ]
    assert "per-class precision / recall / F1" in result.stdout
    for label in ("neg", "pos", "macro avg"):
        assert label in result.stdout


@pytest.mark.slow
def test_api_key_lands_in_no_file_the_run_wrote(offline_fit):
    tmp_path, result = offline_fit
    files = [p for folder in ("runs", "wandb_dir") for p in (tmp_path / folder).rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.suffix == ".ckpt" for p in files)
    leaked = [p for p in files if DUMMY_KEY.encode() in p.read_bytes()]
    assert leaked == []
    assert DUMMY_KEY not in result.stdout + result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is: connections are refused at once


@pytest.mark.slow
def test_unreachable_wandb_warns_and_trains_offline(tmp_path):
    online = {"WANDB_MODE": "online", "WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}"}
    result = _fit(tmp_path, online, "--trainer.logger.init_args.init_timeout", "3")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "W&B is unreachable" in result.stderr
    run = read_run(_run_file(tmp_path))
    assert len([row for row in run["history"] if "val/acc" in row]) == 2
    assert run["config"]["model.optimizer.init_args.lr"] == 0.003


@pytest.mark.slow
def test_two_runs_in_one_process_stay_separate(tmp_path, monkeypatch):
    from textcls.cli import TextclsCLI

    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    for key, value in {**QUIET_WANDB, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    train = write_rows(tmp_path / "train.csv", labelled_rows(60))
    for lr in ("0.001", "0.002"):
        TextclsCLI(
            args=[
                "fit",
                "--config",
                str(ROOT / "configs/mlp.yaml"),
                "--config",
                str(ROOT / "configs/logger/wandb.yaml"),
                "--data.train_file",
                str(train),
                "--trainer.max_epochs",
                "1",
                "--trainer.limit_train_batches",
                "1",
                "--trainer.enable_progress_bar",
                "false",
                "--runs_root",
                str(tmp_path / "runs"),
                "--model.optimizer.lr",
                lr,
            ]
        )
    files = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2
    for path in files:
        wait_until_finished(path)
    assert sorted(read_run(f)["config"]["model.optimizer.init_args.lr"] for f in files) == [0.001, 0.002]


def test_per_class_scores_from_a_confusion_matrix():
    import torch

    from textcls.reporting import per_class_scores

    # rows: true class, columns: predicted. Class 2 is never predicted: precision and F1 0, not NaN.
    scores = per_class_scores(torch.tensor([[3, 1, 0], [2, 4, 0], [1, 1, 0]]))
    assert scores[0] == pytest.approx({"precision": 0.5, "recall": 0.75, "f1": 0.6, "support": 4})
    assert scores[1] == pytest.approx({"precision": 4 / 6, "recall": 4 / 6, "f1": 4 / 6, "support": 6})
    assert scores[2] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
