"""Runs of the study: one `textcls fit` (the CLI in-process, in a pool of worker processes that import textcls once)
per setting and seed, each leaving `result.json` in its folder, written last and atomically, so a finished run is
never repeated and an interrupted one is started again. A run that diverges is a result; one that breaks (bad
data, a bug) leaves nothing, so it is not reused.

What a run records: dev metric at each of the workload's evaluations (with the step and the seconds spent in
training batches so far), the training loss of every step (kept as 10-step means, plus the largest spike), the test
metric of the best-dev checkpoint, and the wall time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .space import OPTIMIZERS, Setting
from .workloads import FREQUENCY_OPTIMIZERS, FREQUENCY_WORKLOAD, Workload

ROOT = Path(__file__).resolve().parents[2]
LOSS_CHUNK = 10  # steps per point of the stored loss curve
SPIKE_WINDOW = 20  # steps of the moving average the loss spike is measured on


@dataclass(frozen=True)
class Job:
    workload: Workload
    optimizer: str
    setting: Setting
    seed: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.workload.name, self.optimizer, self.setting.tag(), self.seed)

    def folder(self, runs_root: Path) -> Path:
        return runs_root / self.workload.folder / self.optimizer / self.setting.tag() / f"seed{self.seed}"


def split_files(workload: Workload, fold: int, data_root: Path, work_dir: Path) -> dict[str, Path]:
    """train / dev / test files of the workload's data set, by the accuracy harness's protocol (its folds and dev
    carving, so the study and the Results tables see the same splits)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import accuracy  # benchmarks/accuracy.py

    dataset = accuracy.load_dataset(data_root / workload.data, 10, work_dir / "splits")
    split = dataset.splits[fold]
    return {"train_file": split.train, "val_file": split.dev, "test_file": split.test}


def cli_args(job: Job, files: dict[str, Path], scratch: Path, cache: Path) -> list[str]:
    w, opt = job.workload, OPTIMIZERS[job.optimizer]
    args = ["fit"]
    for config in [*w.config_paths(ROOT), ROOT / opt.config]:
        args += ["--config", str(config)]
    args += [f"--data.{key}={path}" for key, path in files.items()]
    args += job.setting.overrides()
    if opt.schedule_free:  # its own warmup over the share of the budget WarmupCosine warms up for the others
        args.append(f"--model.optimizer.warmup_steps={round(0.1 * w.steps)}")
    args += [
        f"--seed_everything={job.seed}",
        "--trainer.max_epochs=-1",
        f"--trainer.max_steps={w.steps}",
        "--trainer.check_val_every_n_epoch=null",
        f"--trainer.val_check_interval={w.steps // w.evals}",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=50",
        "--checkpoint.save_last=false",
        f"--runs_root={scratch}",
        f"--data.cache_dir={cache}",
        "--test_after_fit=true",
        *w.overrides,
    ]
    return args


def worker_init(threads: int, log_dir: str) -> None:
    """Each worker: its intra-op threads, and its output in a log file of its own (the CLI prints a lot)."""
    import torch

    torch.set_num_threads(threads)
    log = Path(log_dir) / f"worker-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def run_job(job: Job, runs_root: Path, data_root: Path) -> dict[str, Any]:
    """One training run in this (worker) process; returns and stores its result."""
    folder = job.folder(runs_root)
    scratch = folder / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    fold = job.workload.fold_of_seed(job.seed)
    print(f"\n=== {' '.join(map(str, job.key))} fold {fold}", flush=True)
    started = time.perf_counter()
    try:
        files = split_files(job.workload, fold, data_root, runs_root)
        cache = runs_root / "cache" / job.workload.data
        record = _fit(job, cli_args(job, files, scratch, cache))
    except Exception as err:  # bad data or a bug, not a property of the setting (a diverged run returns normally)
        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:500]}
    record.update(
        workload=job.workload.name,
        optimizer=job.optimizer,
        setting=job.setting.tag(),
        lr=job.setting.lr,
        momentum=job.setting.momentum,
        beta2=job.setting.beta2,
        eps=job.setting.eps,
        seed=job.seed,
        fold=fold,
        budget=job.workload.steps,
        wall_seconds=time.perf_counter() - started,
    )
    if record["status"] == "failed":  # kept nowhere: once the cause is fixed, the next study runs it again
        shutil.rmtree(scratch, ignore_errors=True)
        return record
    folder.mkdir(parents=True, exist_ok=True)  # whatever the CLI got to create before it stopped
    _keep(job, scratch, folder)
    shutil.rmtree(scratch, ignore_errors=True)  # checkpoints: hundreds of MB over a study, never read again
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(folder / "result.json")
    return record


def _keep(job: Job, scratch: Path, folder: Path) -> None:
    """What outlives the scratch folder: the per-class (per-label) test report, and for the frequency test the
    best checkpoints of its optimizers."""
    for path in scratch.glob("*/*/test_per_*.csv"):
        shutil.copy(path, folder / path.name)
    if job.workload.name == FREQUENCY_WORKLOAD and job.optimizer in FREQUENCY_OPTIMIZERS:
        for path in scratch.glob("*/*/checkpoints/best.ckpt"):
            shutil.copy(path, folder / "best.ckpt")


def _fit(job: Job, args: list[str]) -> dict[str, Any]:
    from pytorch_lightning.callbacks import Callback, EarlyStopping

    from textcls.cli import TextclsCLI
    from textcls.nonfinite import NonFiniteLossError

    metric = f"val/{job.workload.metric}"

    class Recorder(Callback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self.start = 0.0
            self.losses: list[float] = []
            self.dev: list[tuple[int, float, float]] = []  # (step, dev metric, training seconds)

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.seconds += time.perf_counter() - self.start
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            self.losses.append(float(loss) if loss is not None else math.nan)

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking and metric in trainer.callback_metrics:
                self.dev.append((trainer.global_step, float(trainer.callback_metrics[metric]), self.seconds))

    recorder = Recorder()

    class StudyCLI(TextclsCLI):
        def instantiate_classes(self) -> None:
            super().instantiate_classes()
            # equal budgets: a recipe's early stopping would end runs at different steps per optimizer
            kept = [c for c in self.trainer.callbacks if not isinstance(c, EarlyStopping)]
            self.trainer.callbacks = [*kept, recorder]

    diverged = False
    try:
        cli = StudyCLI(args=args)
    except NonFiniteLossError:  # --model.nonfinite_loss stop ends a diverged run
        diverged, cli = True, None
    test_key = f"test/{job.workload.metric}"
    test = math.nan
    if cli is not None and test_key in cli.trainer.callback_metrics:
        test = float(cli.trainer.callback_metrics[test_key])
    dev = recorder.dev
    scores = [d[1] for d in dev]
    best = max(range(len(dev)), key=lambda i: scores[i]) if dev else None
    losses = recorder.losses
    return {
        "status": "diverged" if diverged else "ok",
        "best_dev": scores[best] if best is not None else math.nan,
        "best_step": dev[best][0] if best is not None else None,
        "final_dev": scores[-1] if dev else math.nan,
        "test_at_best_dev": test,
        "steps": len(losses),
        "train_seconds": recorder.seconds,
        "dev_curve": dev,
        "loss_curve": _chunk_means(losses, LOSS_CHUNK),
        "loss_spike": _largest_spike(losses, SPIKE_WINDOW),
        "final_train_loss": _mean(losses[-50:]),
    }


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _chunk_means(values: list[float], size: int) -> list[float]:
    return [_mean(values[i : i + size]) for i in range(0, len(values), size)]


def _largest_spike(values: list[float], window: int) -> float:
    """The largest rise of the loss's moving average above its lowest value so far (0: it never went back up)."""
    if any(not math.isfinite(v) for v in values):
        return math.inf
    lowest, spike, total = math.inf, 0.0, 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        if i + 1 >= window:
            average = total / window
            lowest = min(lowest, average)
            spike = max(spike, average - lowest)
    return spike


def load_results(runs_root: Path, workloads: dict[str, Workload]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Every finished run of these workloads (at their step budgets: a run with another budget is another study)."""
    out = {}
    for workload in workloads.values():
        for path in (runs_root / workload.folder).glob("*/*/seed*/result.json"):
            record = json.loads(path.read_text())
            out[(record["workload"], record["optimizer"], record["setting"], int(record["seed"]))] = record
    return out
