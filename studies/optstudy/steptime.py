"""Time per training step and optimizer state memory, per workload and optimizer, measured interleaved.

For each workload, every optimizer gets the workload's own network and real batches (built by the CLI from the
workload's configs, the optimizer and its kernel chosen by textcls exactly as in training), then rounds of timed
steps (forward, backward, clipping, optimizer step) rotate over the optimizers, so machine noise hits them alike.
Reported: the median full step and the median optimizer step in ms, and the optimizer's state in bytes per
parameter. Lightning's loop is left out (it is the same for every optimizer). The study turns steps to a target
into seconds with these figures.

    python studies/compare_optimizers.py --step-time        # writes docs/optimizer_study/step_time.csv
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .runner import Job, cli_args, split_files
from .space import OPTIMIZERS, Setting
from .workloads import Workload

WARMUP_STEPS = 3
STEPS_PER_ROUND = 10
ROUNDS = 5
FIELDS = ["workload", "optimizer", "kernel", "step_ms", "optimizer_step_ms", "state_bytes_per_param", "rounds"]


def _build(workload: Workload, optimizer: str, runs_root: Path, data_root: Path) -> dict[str, Any]:
    from textcls.cli import TextclsCLI
    from textcls.optim import build_optimizer

    momenta = workload.momenta(OPTIMIZERS[optimizer])  # none with sparse gradients: SGD's buffer would grow
    job = Job(workload, optimizer, Setting(OPTIMIZERS[optimizer].center, momentum=momenta[0] if momenta else None), 0)
    files = split_files(workload, 0, data_root, runs_root)
    args = cli_args(job, files, runs_root / "steptime-scratch", runs_root / "cache" / workload.data)
    cli = TextclsCLI(args=args[1:], run=False)  # no subcommand without run
    model, datamodule = cli.model, cli.datamodule
    datamodule.setup("fit")
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append(batch)
        if len(batches) == STEPS_PER_ROUND:
            break
    groups = model.check_optimizer(cli.trainer.gradient_clip_val)
    opt = build_optimizer(model.optimizer_factory, groups, torch.device("cpu"))
    if callable(getattr(opt, "train", None)):
        opt.train()  # Schedule-Free: steps in train mode
    return {
        "model": model,
        "opt": opt,
        "batches": batches,
        "clip": cli.trainer.gradient_clip_val,
        "ms": [],
        "opt_ms": [],
    }


def _kernel(opt: torch.optim.Optimizer) -> str:
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    return "foreach" if group.get("foreach") else "for-loop"


def _steps(run: dict[str, Any], timed: bool) -> None:
    model, opt = run["model"], run["opt"]
    model.train()
    params = [p for g in opt.param_groups for p in g["params"]]
    for batch in run["batches"] if timed else run["batches"][:WARMUP_STEPS]:
        start = time.perf_counter()
        loss = model._loss(model(batch["input_ids"]), batch["labels"])  # the module's own loss, as in training_step
        loss.backward()
        if run["clip"]:
            torch.nn.utils.clip_grad_norm_(params, run["clip"])
        middle = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        end = time.perf_counter()
        if timed:
            run["ms"].append(1000 * (end - start))
            run["opt_ms"].append(1000 * (end - middle))


def _state_bytes(opt: torch.optim.Optimizer) -> float:
    params = [p for g in opt.param_groups for p in g["params"]]
    state = sum(
        v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()
    )
    return state / sum(p.numel() for p in params)


def measure(workloads: list[Workload], optimizers: list[str], runs_root: Path, data_root: Path, out: Path) -> None:
    rows = []
    torch.set_num_threads(1)  # as the study's runs
    for workload in workloads:
        runs = {o: _build(workload, o, runs_root, data_root) for o in optimizers if o in workload.optimizers}
        for run in runs.values():
            _steps(run, timed=False)
        names = list(runs)
        for r in range(ROUNDS):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # a different order each round
                _steps(runs[name], timed=True)
        for name, run in runs.items():
            row = {
                "workload": workload.name,
                "optimizer": name,
                "kernel": _kernel(run["opt"]),
                "step_ms": statistics.median(run["ms"]),
                "optimizer_step_ms": statistics.median(run["opt_ms"]),
                "state_bytes_per_param": _state_bytes(run["opt"]),
                "rounds": ROUNDS,
            }
            rows.append(row)
            print(
                f"{workload.name:16s} {name:20s} {row['kernel']:8s} {row['step_ms']:8.2f} ms/step "
                f"{row['optimizer_step_ms']:7.2f} ms/opt-step {row['state_bytes_per_param']:5.2f} B/param",
                flush=True,
            )
    measured = {w.name for w in workloads}
    if out.is_file():  # other workloads' rows stay: each workload is measured interleaved on its own
        with out.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["workload"] not in measured] + rows
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    if not path.is_file():
        return {}
    with path.open() as handle:
        return {
            (r["workload"], r["optimizer"]): {
                **{k: float(r[k]) for k in ("step_ms", "optimizer_step_ms", "state_bytes_per_param")},
                "kernel": r["kernel"],
            }
            for r in csv.DictReader(handle)
        }
