"""The optimizer study: TextCNN and MLP trained with SGD (momentum 0.9), RMSprop, Adam and AdamW under one budget.

For each model and optimizer, the learning rate is chosen on the dev split from a small grid (one seed), then the
chosen learning rate is trained with every seed. Every run is a real `textcls fit` process logging to its CSVLogger
metrics.csv, from which this script reads per-step training loss, dev accuracy at each validation, training seconds
and the test accuracy of the best-dev checkpoint. Outputs, in --out:

  runs.csv       one row per training run (grid and seeds)
  summary.csv    one row per model x optimizer: chosen lr, best dev / test accuracy mean and std over seeds,
                 steps and seconds to reach the target dev accuracy, seed-to-seed spread
  <model>.png    training loss and dev accuracy against step, mean over seeds with a min-max band

Runs that already finished (a metrics.csv with a test accuracy in their folder) are read instead of re-run, so an
interrupted study continues where it stopped.

    python studies/compare_optimizers.py                                   # demo data, output in runs/
    python studies/compare_optimizers.py --data ../shared/data/sst2 --out docs/optimizer_study
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TEXTCLS = str(Path(sys.executable).parent / "textcls")


@dataclass(frozen=True)
class Optimizer:
    name: str
    class_path: str
    grid: tuple[float, ...]  # three values spanning a decade around the usual default
    init_args: tuple[tuple[str, object], ...]  # set explicitly: a class_path switch keeps the base config's values

    def args(self, lr: float) -> list[str]:
        out = [f"--model.optimizer={self.class_path}", f"--model.optimizer.lr={lr}"]
        return out + [f"--model.optimizer.{k}={v}" for k, v in self.init_args]


OPTIMIZERS = {
    "sgd": Optimizer("SGD", "torch.optim.SGD", (0.03, 0.1, 0.3), (("momentum", 0.9), ("weight_decay", 0.0))),
    "rmsprop": Optimizer("RMSprop", "torch.optim.RMSprop", (1e-4, 3e-4, 1e-3), (("weight_decay", 0.0),)),
    "adam": Optimizer("Adam", "torch.optim.Adam", (3e-4, 1e-3, 3e-3), (("weight_decay", 0.0),)),
    # AdamW with torch's default decoupled weight decay; textcnn.yaml's weight_decay 0.0 would otherwise carry over.
    "adamw": Optimizer("AdamW", "torch.optim.AdamW", (3e-4, 1e-3, 3e-3), (("weight_decay", 0.01),)),
}
MODELS = {"textcnn": "configs/textcnn.yaml", "mlp": "configs/mlp.yaml"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, help="folder with train.csv, dev.csv, test.csv (label,text); default: demo")
    p.add_argument("--out", type=Path, help="where the CSVs and PNGs go (default runs/optimizer_study/<data>)")
    p.add_argument("--runs-root", type=Path, help="training runs (default runs/optimizer_study/<data>-runs)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    p.add_argument("--seeds", type=int, default=3, help="seeds at the chosen lr (the grid uses the first)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--val-checks-per-epoch", type=int, default=4, help="dev evaluations per epoch (curve resolution)")
    p.add_argument("--limit-train-batches", type=float, default=None, help="for a smoke test of the script")
    p.add_argument("--grid-size", type=int, default=3, help="use only the middle N values of each lr grid (1 or 3)")
    p.add_argument(
        "--target-acc",
        type=float,
        default=None,
        help="dev accuracy to reach; default per model: 0.97 x the best optimizer's mean best dev accuracy",
    )
    p.add_argument("--jobs", type=int, default=1, help="training runs at a time")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads per run (OMP_NUM_THREADS)")
    p.add_argument("--smooth", type=int, default=20, help="moving-average window (steps) for the loss curves")
    args = p.parse_args(argv)
    name = args.data.name if args.data else "demo"
    args.out = args.out or ROOT / "runs" / "optimizer_study" / name
    args.runs_root = args.runs_root or ROOT / "runs" / "optimizer_study" / f"{name}-runs"
    return args


def data_args(data: Path | None) -> list[str]:
    if data is None:
        return ["--data.dataset=demo"]
    files = {"train_file": "train.csv", "val_file": "dev.csv", "test_file": "test.csv"}
    missing = [f for f in files.values() if not (data / f).is_file()]
    if missing:
        raise SystemExit(f"error: {data} lacks {', '.join(missing)}; --data needs train.csv, dev.csv and test.csv")
    return [f"--data.{key}={(data / name).resolve()}" for key, name in files.items()]


def run_dir(args: argparse.Namespace, model: str, opt: str, lr: float, seed: int) -> Path:
    return args.runs_root / model / opt / f"lr{lr:g}-seed{seed}"


def finished_metrics(folder: Path) -> Path | None:
    for path in sorted(folder.glob("*/*/metrics.csv")):
        if "test/acc" in path.read_text().splitlines()[0]:
            return path
    return None


def train(args: argparse.Namespace, model: str, opt: str, lr: float, seed: int) -> Path:
    folder = run_dir(args, model, opt, lr, seed)
    done = finished_metrics(folder)
    if done is not None:
        print(f"  {model:8s} {opt:8s} lr={lr:<8g} seed={seed}  (already done)", flush=True)
        return done
    command = [
        TEXTCLS,
        "fit",
        f"--config={ROOT / MODELS[model]}",
        *data_args(args.data),
        *OPTIMIZERS[opt].args(lr),
        f"--seed_everything={seed}",
        f"--trainer.max_epochs={args.epochs}",
        f"--data.max_length={args.max_length}",
        f"--data.batch_size={args.batch_size}",
        f"--trainer.val_check_interval={1 / args.val_checks_per_epoch}",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.callbacks+=study_clock.TrainClock",
        "--checkpoint.save_last=false",
        f"--runs_root={folder}",
    ]
    if args.limit_train_batches:
        command.append(f"--trainer.limit_train_batches={args.limit_train_batches}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"error: run failed ({model} {opt} lr={lr} seed={seed}); command: {' '.join(command)}")
    done = finished_metrics(folder)
    if done is None:
        raise SystemExit(f"error: {folder} has no metrics.csv with a test accuracy after the run")
    print(f"  {model:8s} {opt:8s} lr={lr:<8g} seed={seed}  {time.perf_counter() - start:5.1f} s", flush=True)
    return done


def read_run(path: Path) -> dict[str, object]:
    """Per-step training loss, dev accuracy and training seconds at each validation, test accuracy."""
    frame = pd.read_csv(path)
    loss = frame.dropna(subset=["train/loss_step"])[["step", "train/loss_step"]].to_numpy()
    val = frame.dropna(subset=["val/acc"])[["step", "val/acc"]]
    clock = frame.dropna(subset=["time/train_seconds"])[["step", "time/train_seconds"]]
    val = val.merge(clock, on="step", how="left").to_numpy()
    test = frame["test/acc"].dropna()
    return {"loss": loss, "val": val, "test_acc": float(test.iloc[-1])}


def reach(val: np.ndarray, target: float) -> tuple[float, float]:
    """Step and training seconds of the first validation at or above `target` (NaN when never reached).
    Lightning logs validation under the step count of the last completed batch, so step + 1 batches were trained."""
    hits = np.nonzero(val[:, 1] >= target)[0]
    if len(hits) == 0:
        return math.nan, math.nan
    return float(val[hits[0], 0] + 1), float(val[hits[0], 2])


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # no warm-up gap at the start of the curve
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def _grid(args: argparse.Namespace, opt: str) -> tuple[float, ...]:
    grid = OPTIMIZERS[opt].grid
    start = max((len(grid) - args.grid_size) // 2, 0)
    return grid[start : start + args.grid_size]


def study(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs = [(model, opt) for model in args.models for opt in args.optimizers]
    # Phase 1: every lr of every grid with the first seed. Phase 2: the other seeds at each chosen lr.
    grid_jobs = [(model, opt, lr, 0) for model, opt in pairs for lr in _grid(args, opt)]
    done = _run_all(args, grid_jobs)
    # Best dev accuracy on the first seed chooses the lr; the test split is never looked at for the choice.
    chosen = {
        (model, opt): max(_grid(args, opt), key=lambda lr: float(done[(model, opt, lr, 0)]["val"][:, 1].max()))
        for model, opt in pairs
    }
    seed_jobs = [(model, opt, chosen[(model, opt)], seed) for model, opt in pairs for seed in range(1, args.seeds)]
    done.update(_run_all(args, seed_jobs))
    print(f"all runs: {time.perf_counter() - started:.0f} s", flush=True)

    rows = []
    for (model, opt, lr, seed), run in done.items():
        row = _run_row(model, opt, lr, seed, "grid" if (model, opt, lr, seed) in grid_jobs else "seed", run)
        row["chosen"] = lr == chosen[(model, opt)]
        rows.append(row)
    curves = {
        (model, opt): [done[(model, opt, chosen[(model, opt)], seed)] for seed in range(args.seeds)]
        for model, opt in pairs
    }

    runs_table = pd.DataFrame(rows)
    summary = summarise(args, curves, runs_table)
    runs_table["lr"] = runs_table["lr"].map("{:g}".format)  # 0.0003, not 0.0003 rounded by the 4-decimal format
    for model in args.models:
        plot(args, model, curves, summary)
    summary["chosen_lr"] = summary["chosen_lr"].map("{:g}".format)
    runs_table.to_csv(args.out / "runs.csv", index=False, float_format="%.4f")
    summary.to_csv(args.out / "summary.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False))
    print(f"wrote {args.out / 'summary.csv'}, {args.out / 'runs.csv'} and one PNG per model")


def _run_all(args: argparse.Namespace, jobs: list[tuple[str, str, float, int]]) -> dict[tuple, dict[str, object]]:
    """Run the jobs, `--jobs` at a time (each a separate process with `--threads` intra-op threads)."""
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        paths = list(pool.map(lambda job: train(args, *job), jobs))
    return {job: read_run(path) for job, path in zip(jobs, paths, strict=True)}


def _run_row(model: str, opt: str, lr: float, seed: int, phase: str, run: dict[str, object]) -> dict[str, object]:
    val: np.ndarray = run["val"]  # type: ignore[assignment]
    loss: np.ndarray = run["loss"]  # type: ignore[assignment]
    return {
        "model": model,
        "optimizer": OPTIMIZERS[opt].name,
        "lr": lr,
        "seed": seed,
        "phase": phase,
        "chosen": False,
        "best_dev_acc": float(val[:, 1].max()),
        "final_dev_acc": float(val[-1, 1]),
        "test_acc": run["test_acc"],
        "final_train_loss": float(loss[-50:, 1].mean()),
        "steps": int(loss[-1, 0]) + 1,
        "train_seconds": float(val[-1, 2]),
    }


def summarise(args: argparse.Namespace, curves: dict, runs_table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for model in args.models:
        means = {opt: np.mean([r["val"][:, 1].max() for r in curves[(model, opt)]]) for opt in args.optimizers}
        target = args.target_acc or math.floor(0.97 * max(means.values()) * 200) / 200  # rounded down to 0.005
        for opt in args.optimizers:
            runs = curves[(model, opt)]
            best = np.array([r["val"][:, 1].max() for r in runs])
            test = np.array([r["test_acc"] for r in runs])
            reached = np.array([reach(r["val"], target) for r in runs])
            chosen = runs_table[(runs_table.model == model) & (runs_table.optimizer == OPTIMIZERS[opt].name)]
            hit = ~np.isnan(reached[:, 0])
            out.append(
                {
                    "model": model,
                    "optimizer": OPTIMIZERS[opt].name,
                    "lr_grid": " ".join(f"{lr:g}" for lr in sorted(chosen[chosen.phase == "grid"].lr)),
                    "chosen_lr": float(chosen[chosen.chosen].lr.iloc[0]),
                    # The best lr at the end of its grid means the grid may not bracket the optimum for this budget.
                    "chosen_at_grid_edge": float(chosen[chosen.chosen].lr.iloc[0]) in (min(chosen.lr), max(chosen.lr)),
                    "seeds": len(runs),
                    "best_dev_acc_mean": best.mean(),
                    "best_dev_acc_std": best.std(ddof=1) if len(runs) > 1 else math.nan,
                    "test_acc_mean": test.mean(),
                    "test_acc_std": test.std(ddof=1) if len(runs) > 1 else math.nan,
                    "test_acc_spread": test.max() - test.min(),
                    "target_dev_acc": target,
                    "seeds_reaching_target": int(hit.sum()),
                    "steps_to_target_mean": reached[hit, 0].mean() if hit.any() else math.nan,
                    "seconds_to_target_mean": reached[hit, 1].mean() if hit.any() else math.nan,
                    "final_train_loss_mean": np.mean([r["loss"][-50:, 1].mean() for r in runs]),
                    "train_seconds_mean": np.mean([r["val"][-1, 2] for r in runs]),
                }
            )
    return pd.DataFrame(out)


def _band(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Align runs on their common steps; mean, min and max across seeds."""
    n = min(len(s) for s in series)
    stacked = np.stack([s[:n, 1] for s in series])
    return series[0][:n, 0], stacked.mean(0), stacked.min(0), stacked.max(0)


def plot(args: argparse.Namespace, model: str, curves: dict, summary: pd.DataFrame) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for i, opt in enumerate(args.optimizers):
        runs = curves[(model, opt)]
        row = summary[(summary.model == model) & (summary.optimizer == OPTIMIZERS[opt].name)].iloc[0]
        label = f"{OPTIMIZERS[opt].name} (lr {row.chosen_lr:g})"
        color = f"C{i}"
        smoothed = [np.column_stack([r["loss"][:, 0], moving_average(r["loss"][:, 1], args.smooth)]) for r in runs]
        steps, mean, low, high = _band(smoothed)
        ax_loss.plot(steps, mean, color=color, label=label, lw=1.4)
        ax_loss.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
        steps, mean, low, high = _band([r["val"][:, :2] for r in runs])
        ax_acc.plot(steps + 1, mean, color=color, label=label, marker="o", ms=3, lw=1.4)
        ax_acc.fill_between(steps + 1, low, high, color=color, alpha=0.2, lw=0)
    target = float(summary[summary.model == model].target_dev_acc.iloc[0])
    ax_acc.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.3f}")
    data = args.data.name if args.data else "demo data"
    seeds = f"{args.seeds} seeds, mean and min-max band"
    ax_loss.set(
        title=f"{model} on {data}: training loss ({args.smooth}-step moving average; {seeds})",
        xlabel="optimizer step",
        ylabel="cross-entropy",
    )
    ax_acc.set(title=f"{model} on {data}: dev accuracy ({seeds})", xlabel="optimizer step", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.title.set_fontsize(9)
    fig.savefig(args.out / f"{model}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    study(parse_args())
