"""DDP with real processes on this CPU (gloo): 2-process `ddp_cpu` against 1 process, and two "nodes" on loopback.

Every process is a `textcls` subprocess in its own session, killed with its children if the test fails or times out
(Lightning's DDP launcher re-runs the command line, which inside pytest would re-run pytest)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TEXTCLS, labelled_rows, last_metrics, write_rows

from textcls.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
N_TRAIN, N_VAL, N_TEST = 240, 41, 31  # odd evaluation sets: a padding sampler would repeat an example


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_rows(root / "train.csv", labelled_rows(N_TRAIN)),
        "val": write_rows(root / "val.csv", labelled_rows(N_VAL, prefix="v")),
        "test": write_rows(root / "test.csv", labelled_rows(N_TEST, prefix="t")),
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
        "--data.test_file",
        str(data["test"]),
        "--runs_root",
        str(runs),
        "--trainer.max_epochs",
        "4",
        "--model.model.init_args.num_filters",
        "16",
        "--model.model.init_args.embedding_dim",
        "32",
        "--model.optimizer.lr",
        "0.01",
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def start(args: list[str], **env: str) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(
        [TEXTCLS, *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group per launch: the cleanup below reaches DDP children too
    )


def finish(*processes: subprocess.Popen, timeout: int = 240) -> list[str]:
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    for process, out in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out[-4000:]
    return outputs


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in (runs / "textcnn").iterdir() if p.is_dir())


def evaluated_rows(directory: Path, pattern: str) -> list[int]:
    rows: list[int] = []
    for path in sorted(directory.glob(pattern)):
        rows += json.loads(path.read_text())
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(out_dir: Path) -> list[str]:
    return ["--trainer.callbacks+=training_probes.RecordEvalRows", "--trainer.callbacks.out_dir", str(out_dir)]


def test_ddp_cpu_two_processes_match_one_process_and_count_each_example_once(tmp_path, data, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    # Same global batch: 16 in one process, 8 per process in two; the runs are independent, so they run at once.
    single = start(fit_args(one, data, "--data.batch_size", "16", *probe(one / "rows")))
    preset = ["--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]
    ddp = start([*fit_args(two, data, "--data.batch_size", "8", *probe(two / "rows")), *preset])
    finish(single, ddp)

    [run_one], [run_two] = run_dirs(one), run_dirs(two)  # the DDP child wrote into rank 0's run directory
    last_one = torch.load(run_one / "checkpoints/last.ckpt", weights_only=True)
    last_two = torch.load(run_two / "checkpoints/last.ckpt", weights_only=True)
    assert last_one["global_step"] == last_two["global_step"] == 4 * (N_TRAIN // 16)
    m_one, m_two = last_metrics(run_one), last_metrics(run_two)
    assert abs(m_one["val/acc"] - m_two["val/acc"]) <= 0.005
    assert m_two["val/acc"] >= 0.95  # both learned the task, so the comparison means something

    # Each validation and test example evaluated exactly once across the two ranks (no padding duplicates).
    for pattern, n in (("val-e3-r*.json", N_VAL), ("test-*-r*.json", N_TEST)):
        rows = evaluated_rows(two / "rows", pattern)
        assert len(rows) == n and sorted(rows) == list(range(n)), pattern
        assert len(list((two / "rows").glob(pattern))) == 2  # both ranks took part

    # The logged metric is over exactly that set: one process validating the DDP checkpoint gets the same loss
    # (in-process: one process is not the subject here).
    monkeypatch.chdir(tmp_path)
    main(["validate", "--ckpt_path", str(run_two / "checkpoints/last.ckpt"), "--data.val_file", str(data["val"]),
          "--runs_root", str(tmp_path / "check"), "--trainer.enable_progress_bar", "false"])  # fmt: skip
    [validated] = [p for p in (tmp_path / "check").glob("*/*") if p.is_dir()]
    assert last_metrics(validated)["val/loss"] == pytest.approx(m_two["val/loss"], rel=1e-5)
    assert last_metrics(validated)["val/acc"] == pytest.approx(m_two["val/acc"], abs=1e-6)


def test_two_nodes_on_loopback_write_logs_checkpoints_and_predictions_once(tmp_path, data):
    runs = tmp_path / "runs"
    port = str(free_port())
    nodes = ["--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.num_nodes", "2"]
    nodes += ["--trainer.devices", "1"]
    launches = [
        start(
            [*fit_args(runs, data, "--data.batch_size", "8"), *nodes],
            NODE_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        for rank in (0, 1)
    ]
    finish(*launches)
    [run] = run_dirs(runs)  # node 1 created no directory of its own
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert "test/acc" in last_metrics(run)

    predict_file = write_rows(tmp_path / "predict.csv", labelled_rows(N_TEST, prefix="p"))
    port = str(free_port())
    predict = [
        "predict",
        "--ckpt_path",
        str(run / "checkpoints/best.ckpt"),
        "--data.predict_file",
        str(predict_file),
        "--runs_root",
        str(runs),
        "--trainer.enable_progress_bar",
        "false",
        *nodes,
    ]
    finish(*[start(predict, NODE_RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=port) for r in (0, 1)])
    predicted = [p for p in run_dirs(runs) if p != run]
    assert len(predicted) == 1, predicted  # one predict run directory, made by rank 0
    files = list(predicted[0].rglob("predictions*.csv"))
    assert [f.name for f in files] == ["predictions.csv"]
    with files[0].open() as handle:
        ids = [int(row["id"]) for row in csv.DictReader(handle)]
    assert sorted(ids) == list(range(N_TEST))


def epoch_train_metrics(run: Path) -> dict[str, float]:
    """The last epoch's train/acc, train/f1 and train/loss_epoch."""
    keys = ("train/acc", "train/f1", "train/loss_epoch")
    out: dict[str, float] = {}
    with (run / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            out.update({k: float(v) for k, v in row.items() if v and k in keys})
    return out


def test_ddp_resume_mid_epoch_counts_every_rank_s_batches_of_that_epoch(tmp_path, data):
    """Killed mid-epoch, the checkpoint holds the running training metrics summed over both ranks, so the resumed
    epoch reports what an uninterrupted 2-process run reports (rank 0's share alone would undercount)."""
    preset = ["--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]
    common = [
        "--trainer.max_epochs",
        "2",
        "--data.batch_size",
        "8",  # 240 rows / 2 ranks / 8: 15 steps per epoch
        "--trainer.deterministic",
        "true",
        "--test_after_fit",
        "false",
        "--checkpoint.last_every_n_train_steps",
        "5",
    ]
    reference_run = start([*fit_args(tmp_path / "ref", data, *common), *preset])  # alongside the killed run
    runs = tmp_path / "runs"
    kill = ["--trainer.callbacks+=training_probes.KillAt", "--trainer.callbacks.phase", "train"]
    killed = start([*fit_args(runs, data, *common, *kill, "--trainer.callbacks.step", "22"), *preset])
    try:
        killed.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)
    finish(reference_run)
    [first] = run_dirs(runs)
    assert torch.load(first / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 20  # 5 batches into epoch 1
    finish(start([*fit_args(runs, data, *common, "--ckpt_path", "last"), *preset]))

    [reference], (_, resumed) = run_dirs(tmp_path / "ref"), run_dirs(runs)
    want, got = epoch_train_metrics(reference), epoch_train_metrics(resumed)
    assert set(got) == {"train/acc", "train/f1", "train/loss_epoch"}
    assert got["train/acc"] == want["train/acc"] and got["train/f1"] == want["train/f1"]
    assert got["train/loss_epoch"] == pytest.approx(want["train/loss_epoch"], rel=1e-6)


def test_ddp_ranks_count_nb_weights_over_the_whole_training_split(tmp_path, data):
    # Each rank counts every training text, not its DistributedSampler shard: the weights of a 2-process fit are
    # those of a 1-process fit. (Rank 0's buffers reach rank 1 through DDP's buffer broadcast either way.)
    def nb_fit(runs: Path, *extra: str) -> list[str]:
        return [
            "fit", "--config", str(ROOT / "configs/mlp.yaml"),
            "--data.train_file", str(data["train"]), "--data.val_file", str(data["val"]),
            "--runs_root", str(runs), "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            "--model.model.init_args.nb_weighting", "true", "--model.model.init_args.ngram_buckets", "997",
            *extra,
        ]  # fmt: skip

    one, two = tmp_path / "one", tmp_path / "two"
    finish(start(nb_fit(one)), start([*nb_fit(two), "--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]))
    [last_one], [last_two] = (list(runs.glob("mlp/*/checkpoints/last.ckpt")) for runs in (one, two))
    weights_one = torch.load(last_one, weights_only=True)["state_dict"]
    weights_two = torch.load(last_two, weights_only=True)["state_dict"]
    for key in ("model.nb_unigram", "model.nb_ngram"):
        assert weights_one[key].max() > 1  # counted
        torch.testing.assert_close(weights_two[key], weights_one[key])
