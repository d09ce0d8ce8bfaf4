"""Two real DDP processes (gloo, CPU) through the console script: the vocabulary is built once, both ranks load
the same one, and each rank trains on its own disjoint shard of the (length-bucketed) training rows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import TEXTCLS, write_rows
from pytorch_lightning.callbacks import Callback

ROOT = Path(__file__).resolve().parents[2]
PROBE_DIR = "TEXTCLS_TEST_SHARD_PROBE_DIR"


class ShardProbe(Callback):
    """Loaded by the CLI from this module: writes what each rank saw to $TEXTCLS_TEST_SHARD_PROBE_DIR/rank<N>.json."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.extend(batch["index"].tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        loader = trainer.train_dataloader
        record = {
            "seen": self.seen,
            "vocab": dm.tokenizer.vocab,
            "built": dm.built_entries,
            "train_rows": len(dm.datasets["train"]),
            "batch_sampler": type(loader.batch_sampler).__name__,
            "inner_sampler": type(loader.batch_sampler.sampler).__name__,
        }
        Path(os.environ[PROBE_DIR], f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ddp_ranks_share_one_vocabulary_and_read_disjoint_shards(tmp_path):
    rows = [{"text": f"w{i % 11} " * (1 + i % 23) + f"u{i}", "label": "ab"[i % 2]} for i in range(400)]
    train = write_rows(tmp_path / "train.csv", rows)
    probe = tmp_path / "probe"
    probe.mkdir()
    env = dict(
        os.environ,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=f"{Path(__file__).parent}{os.pathsep}{Path(__file__).parents[1]}",
    )
    env[PROBE_DIR] = str(probe)
    command = [
        TEXTCLS, "fit", "--config", "configs/textcnn.yaml",
        "--data.train_file", str(train), "--data.batch_size", "16", "--data.num_workers", "0",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.callbacks+=test_data_ddp.ShardProbe", "--runs_root", str(tmp_path / "runs"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["vocab"] == ranks[1]["vocab"]
    train_entries = [key for r in ranks for key in r["built"] if key.startswith("train-")]
    assert len(train_entries) == 1, "the vocabulary and the training split must be built by one rank only"
    assert [r["batch_sampler"] for r in ranks] == ["BucketBatchSampler"] * 2
    assert [r["inner_sampler"] for r in ranks] == ["DistributedSampler"] * 2
    shards = [set(r["seen"]) for r in ranks]
    total = ranks[0]["train_rows"]
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"])  # equal step counts, or DDP would hang
    # DistributedSampler pads the shorter shard with at most one repeated row when the count is odd.
    assert len(shards[0] & shards[1]) <= total % 2
    assert shards[0] | shards[1] == set(range(total))
