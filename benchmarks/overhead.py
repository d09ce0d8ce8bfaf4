"""Training throughput of `textcls fit` against a hand-written PyTorch loop, in one run, as a ratio.

Both sides train the same network (same seed, same initial weights) on the same batches in the same order (the
datamodule's own training DataLoader, epoch set alike), with the same fused Adam, the same warmup-cosine schedule per
step and the same gradient clipping. The textcls side is what `textcls fit --config X` builds: TextclsCLI's
TextClassifier, Trainer and default callbacks (progress bar, checkpointing, LR monitor, metrics, RNG state, CSV logger).
Only training batches are timed (validation is not part of either side's throughput): from the first batch of the
second epoch to the end of its last batch; the first epoch warms up both. The two sides alternate, the order flipping
each round, so the noise of a shared machine hits both alike; medians are reported, and the spread.

    .venv/bin/python benchmarks/overhead.py [--models textcnn mlp] [--rounds 5] [--steps 150] [--batch-size 64]
    .venv/bin/python benchmarks/overhead.py --ddp | --bare | --speedups   # see --help for what each adds
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def clocks() -> tuple[float, float]:
    """(wall, CPU time of this thread). With one intra-op thread and no DataLoader workers all training work runs in
    the main thread, so its CPU time counts the work done and not the time other jobs held the shared cores."""
    return time.perf_counter(), time.thread_time()


class EpochTimer(pl.Callback):
    """Wall and CPU time of the training batches of each epoch (first batch start to last batch end), and samples."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, float, int]] = []
        self._start = (0.0, 0.0)
        self._samples = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            self._start = clocks()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        self._samples += len(batch["labels"])
        if idx + 1 == trainer.num_training_batches:
            wall, cpu = clocks()
            self.epochs.append((wall - self._start[0], cpu - self._start[1], self._samples))


class PrintThroughput(EpochTimer):
    """For subprocess runs: print `THROUGHPUT <samples/s over all ranks>` of the last epoch from rank 0."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.epochs:
            seconds, _, samples = self.epochs[-1]
            print(f"THROUGHPUT {samples * trainer.world_size / seconds:.1f}", flush=True)


def cli_args(config: str, steps: int, batch_size: int, runs: str, *extra: str) -> list[str]:
    return [
        "--config", str(ROOT / "configs" / f"{config}.yaml"), "--trainer.max_epochs", "2",
        "--trainer.limit_train_batches", str(steps), "--trainer.limit_val_batches", "5",
        "--trainer.num_sanity_val_steps", "0", "--data.batch_size", str(batch_size), "--runs_root", runs,
        "--test_after_fit", "false", *extra,
    ]  # fmt: skip


def build(config: str, steps: int, batch_size: int, runs: str, *extra: str) -> Any:
    from textcls.cli import TextclsCLI

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # run=False parses without a subcommand, so no run directory is made: give the trainer one in `runs`.
        root = tempfile.mkdtemp(dir=runs)
        args = [*cli_args(config, steps, batch_size, runs, *extra), "--trainer.default_root_dir", root]
        cli = TextclsCLI(args=args, run=False)
    return cli


def run_textcls(config: str, steps: int, batch_size: int, runs: str, *extra: str) -> tuple[float, float]:
    """samples per wall second and per CPU second of the second epoch's training batches under `textcls fit`."""
    cli = build(config, steps, batch_size, runs, *extra)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    wall, cpu, samples = timer.epochs[-1]
    return samples / wall, samples / cpu


def run_raw(config: str, steps: int, batch_size: int, runs: str) -> tuple[float, float]:
    """samples/s of the same work in a plain loop: forward, loss, backward, clip, fused Adam step, schedule step."""
    from textcls.optim import WarmupCosine, build_optimizer, parameter_groups

    cli = build(config, steps, batch_size, runs)  # the same network, data, optimizer and schedule settings
    module, datamodule = cli.model, cli.datamodule
    network = module.model
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    optimizer = build_optimizer(module.optimizer_factory, parameter_groups(network), torch.device("cpu"))
    scheduler = WarmupCosine(optimizer, total_steps=2 * steps, warmup_fraction=0.1)
    clip = cli.trainer.gradient_clip_val
    network.train()
    wall = cpu = 0.0
    samples = 0
    for epoch in range(2):
        for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)
        samples = 0
        start = (0.0, 0.0)
        for i, batch in enumerate(loader):
            if i == 0:
                start = clocks()
            if i == steps:
                break
            logits = network(batch["input_ids"])
            loss = F.cross_entropy(logits.float(), batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), clip)
            optimizer.step()
            scheduler.step()
            samples += len(batch["labels"])
        end = clocks()
        wall, cpu = end[0] - start[0], end[1] - start[1]
    return samples / wall, samples / cpu


class _BareModule(pl.LightningModule):
    """The least a LightningModule can be: forward, loss, the same optimizer and schedule; nothing logged."""

    def __init__(self, network: torch.nn.Module, total_steps: int) -> None:
        super().__init__()
        self.network, self.total_steps = network, total_steps

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self.network(batch["input_ids"]).float(), batch["labels"])

    def configure_optimizers(self) -> Any:
        from textcls.optim import WarmupCosine, build_optimizer, parameter_groups

        optimizer = build_optimizer(torch.optim.Adam, parameter_groups(self.network), torch.device("cpu"))
        schedule = WarmupCosine(optimizer, total_steps=self.total_steps, warmup_fraction=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def run_bare(config: str, steps: int, batch_size: int, runs: str) -> tuple[float, float]:
    """Lightning's floor: a plain Trainer (no callbacks, logger, progress bar or validation) over the same work."""
    from textcls.speed import QuietProfiler

    cli = build(config, steps, batch_size, runs)
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=2, limit_train_batches=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], profiler=QuietProfiler(),
        gradient_clip_val=cli.trainer.gradient_clip_val, default_root_dir=runs,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(_BareModule(cli.model.model, 2 * steps), datamodule=cli.datamodule)
    wall, cpu, samples = timer.epochs[-1]
    return samples / wall, samples / cpu


def interleaved(sides: dict[str, Callable[[str], Any]], rounds: int) -> dict[str, list[Any]]:
    """Each side once per round, the order flipping each round, so a shared machine's noise hits all sides alike."""
    results: dict[str, list[Any]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as runs:
        for r in range(rounds):
            for side in list(sides) if r % 2 == 0 else list(reversed(sides)):
                results[side].append(sides[side](runs))
    return results


def compare(config: str, rounds: int, steps: int, batch_size: int, bare: bool = False) -> None:
    sides = {"textcls": run_textcls, "raw": run_raw, **({"bare PL": run_bare} if bare else {})}
    results = interleaved({k: partial(f, config, steps, batch_size) for k, f in sides.items()}, rounds)
    for clock, k in (("CPU", 1), ("wall", 0)):
        ours, raw = [x[k] for x in results["textcls"]], [x[k] for x in results["raw"]]
        ratios = [a / b for a, b in zip(ours, raw, strict=True)]
        m_ours, m_raw = statistics.median(ours), statistics.median(raw)
        print(
            f"{config:8s} batch {batch_size}, samples per {clock} second: textcls fit {m_ours:7.0f}, raw loop "
            f"{m_raw:7.0f}, ratio of medians {m_ours / m_raw:.3f}; per-round ratios "
            f"{' '.join(f'{x:.3f}' for x in ratios)}",
            flush=True,
        )
        for side in results:
            values = [x[k] for x in results[side]]
            spread = (max(values) - min(values)) / statistics.median(values)
            ratio = statistics.median(values) / m_raw
            rounds = " ".join(f"{v:.0f}" for v in values)
            print(f"    {side:8s} {rounds}  (spread {spread:.0%}; median/raw {ratio:.3f})")


def _flags(*on: bool) -> tuple[str, ...]:
    names = ("quiet_profiler", "throttle_progress_bar", "skip_idle_hooks")
    return tuple(x for k, v in zip(names, on, strict=True) for x in (f"--speedups.{k}", str(v).lower()))


# Each switch of textcls.speed flipped alone against a base with the profiler and progress-bar ones on.
SPEEDUP_VARIANTS = {
    "base": _flags(True, True, False),
    "quiet_profiler off": _flags(False, True, False),
    "throttle_progress_bar off": _flags(True, False, False),
    "skip_idle_hooks on": _flags(True, True, True),
}


def compare_speedups(config: str, rounds: int, steps: int, batch_size: int) -> None:
    """Per round, each variant's samples per second over the base's in that round; > 1: the variant is faster."""
    run = {k: lambda runs, a=a: run_textcls(config, steps, batch_size, runs, *a) for k, a in SPEEDUP_VARIANTS.items()}
    results = interleaved(run, rounds)
    for clock, k in (("CPU", 1), ("wall", 0)):
        print(f"{config:8s} batch {batch_size}, samples per {clock} second relative to the base:", flush=True)
        for name, values in results.items():
            ratios = [v[k] / b[k] for v, b in zip(values, results["base"], strict=True)]
            line = " ".join(f"{x:.3f}" for x in ratios)
            print(f"    {name:26s} median ratio {statistics.median(ratios):.3f}  per round {line}")


def ddp_throughput(rounds: int, steps: int, batch_size: int) -> None:
    """`textcls fit` as a subprocess, 1 process at batch B against ddp_cpu (2 processes) at B/2 each: samples per wall
    second over all ranks (the ideal on 2 free cores is 2x)."""
    textcls = str(Path(sys.executable).parent / "textcls")
    # One thread per process on both sides (Lightning's DDP gives each CPU process cores / processes): two OpenMP
    # threads spinning on a shared 2-core machine measure the neighbours, not textcls.
    path = os.pathsep.join(p for p in (str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}

    def fit(runs: str, processes: int) -> float:
        extra = ["--trainer.enable_progress_bar", "false", "--trainer.callbacks+=overhead.PrintThroughput"]
        args = cli_args("textcnn", steps, batch_size // processes, runs, *extra)
        if processes == 2:
            args += ["--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]
        out = subprocess.run([textcls, "fit", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        line = [x for x in out.stdout.splitlines() if x.startswith("THROUGHPUT")]
        if out.returncode or not line:
            raise RuntimeError(out.stderr[-2000:])
        return float(line[-1].split()[1])

    results = interleaved({"1 process": partial(fit, processes=1), "ddp_cpu x2": partial(fit, processes=2)}, rounds)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"textcnn global batch {batch_size}: 1 process {med['1 process']:.0f} samples/s, ddp_cpu 2 processes "
        f"{med['ddp_cpu x2']:.0f} samples/s, ratio {med['ddp_cpu x2'] / med['1 process']:.3f}"
    )
    for side, values in results.items():
        print(f"    {side:11s} rounds: {' '.join(f'{v:.0f}' for v in values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["textcnn", "mlp"], help="none: only --ddp")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="training batches per epoch (2 epochs, 2nd timed)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ddp", action="store_true", help="also 2-process ddp_cpu against 1 process")
    parser.add_argument("--bare", action="store_true", help="also a bare Lightning Trainer: Lightning's own floor")
    parser.add_argument("--speedups", action="store_true", help="each textcls.speed switch alone, as ratios")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (1: CPU time is a clean measure)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    for config in args.models:
        if args.speedups:
            compare_speedups(config, args.rounds, args.steps, args.batch_size)
        else:
            compare(config, args.rounds, args.steps, args.batch_size, args.bare)
    if args.ddp:
        ddp_throughput(args.rounds, args.steps, args.batch_size)


if __name__ == "__main__":
    main()
