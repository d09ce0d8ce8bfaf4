"""Per-step cost of TextClassifier's training step against an earlier revision's, in one run, as a ratio.

The baseline is `src/textcls/module.py` at `--baseline` (a git revision), imported next to the current one; both train
the same small MLP (a small network, so the module's own work is a visible share of the step) on the same in-memory
batches with the same Trainer (CSV logger, no checkpointing, no validation). Only the main thread's CPU time of the
steps after `--warmup` is counted (one intra-op thread), so other jobs on a shared machine weigh less; the two sides
alternate, the order flipping each round, and medians are reported. `--micro` also times the running training
metrics' update alone (the baseline's TrainStats against textcls.metrics.TrainStats).

    .venv/bin/python benchmarks/train_metrics.py [--baseline a428762] [--rounds 7] [--steps 400] [--micro]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from textcls.metrics import TrainStats
from textcls.models import MLP
from textcls.module import TextClassifier

ROOT = Path(__file__).resolve().parents[1]
VOCAB, CLASSES, BATCH, WIDTH = 2000, 4, 32, 24


def baseline_module(revision: str) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:src/textcls/module.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_module.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batches(count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "input_ids": torch.randint(2, VOCAB, (BATCH, WIDTH), generator=generator),
            "labels": torch.randint(0, CLASSES, (BATCH,), generator=generator),
            "index": torch.arange(i * BATCH, (i + 1) * BATCH),
        }
        for i in range(count)
    ]


class StepClock(pl.Callback):
    """Main-thread CPU time from the start of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.thread_time()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        self.seconds = time.thread_time() - self.start


def step_seconds(module_class: type, data: list[dict[str, torch.Tensor]], warmup: int, log_dir: str) -> float:
    torch.manual_seed(0)
    network = MLP(VOCAB, CLASSES, 0, embedding_dim=32, dropout=0.0)
    module = module_class(network, lr_scheduler=None, label_names=[f"c{i}" for i in range(CLASSES)])
    clock = StepClock(warmup)
    trainer = pl.Trainer(
        max_steps=len(data),
        logger=CSVLogger(log_dir, name="", version=""),
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)  # type: ignore[arg-type]
    trainer.fit(module, train_dataloaders=loader)
    return clock.seconds / (len(data) - warmup)


def update_seconds(stats: Any, data: list[dict[str, torch.Tensor]], logits: torch.Tensor) -> float:
    loss = torch.tensor(0.7)
    start = time.thread_time()
    for batch in data:
        stats.update(logits, batch["labels"], loss)
    return (time.thread_time() - start) / len(data)


def interleaved(sides: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            times[name].append(sides[name]())
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    (base_name, base), (new_name, new) = times.items()
    print(title)
    for name, values in times.items():
        print(f"  {name:>9}: median {statistics.median(values) * 1e6:8.1f} us  (min {min(values) * 1e6:.1f})")
    ratios = sorted(n / b for n, b in zip(new, base, strict=True))
    spread = f"per-round {ratios[0]:.3f}..{ratios[-1]:.3f}"
    print(f"  {new_name}/{base_name}: median {statistics.median(ratios):.3f} ({spread})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="a428762", help="git revision of the baseline module.py")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--micro", action="store_true", help="also time the training metrics' update alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        __import__("logging").getLogger(name).setLevel("ERROR")
    old = baseline_module(args.baseline)
    data = batches(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        sides = {
            "baseline": lambda: step_seconds(old.TextClassifier, data, args.warmup, tmp),
            "current": lambda: step_seconds(TextClassifier, data, args.warmup, tmp),
        }
        report(
            f"training step, {args.steps} steps of batch {BATCH} (CPU time per step)", interleaved(sides, args.rounds)
        )
    if args.micro:
        logits = torch.randn(BATCH, CLASSES)
        micro = {
            "baseline": lambda: update_seconds(old.TrainStats(CLASSES), data, logits),
            "current": lambda: update_seconds(TrainStats(CLASSES), data, logits),
        }
        report("running training metrics, update alone", interleaved(micro, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
