"""The study's figures: one six-panel figure per workload and an overview heat map, written by the study itself."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from .measures import Entry, reach
from .space import OPTIMIZERS, lr_of

COLORS = dict(zip(OPTIMIZERS, plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2], strict=False))
STYLES = {"sgd": "--", "sgd_nesterov": "--", "rmsprop": ":", "adagrad": ":"}  # the non-Adam family dashed


def _style(opt: str) -> dict[str, Any]:
    return {"color": COLORS[opt], "linestyle": STYLES.get(opt, "-"), "label": OPTIMIZERS[opt].label}


def _band(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(c) for c in curves)
    stacked = np.stack([c[:n, 1] for c in curves])
    return curves[0][:n, 0], stacked.mean(0), stacked.min(0), stacked.max(0)


def workload_figure(entries: list[Entry], target: float, step_ms: dict, path: Path) -> None:
    w = entries[0].workload
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    (sens, dev_steps, dev_secs), (loss_ax, bars, test_ax) = axes
    metric = "macro-F1" if w.multi_label else "accuracy"
    done = [e for e in entries if e.seeds]
    for e in entries:
        if e.plan.searches:
            s = e.plan.searches[-1]
            ks = sorted(s.scores)
            ys = [s.scores[k] if math.isfinite(s.scores[k]) else np.nan for k in ks]
            sens.plot([lr_of(k) for k in ks], ys, marker="o", ms=3, **_style(e.optimizer))
            if e.plan.chosen is not None:
                sens.plot([e.plan.chosen.lr], [s.scores[s.best]], marker="*", ms=12, color=COLORS[e.optimizer])
    sens.set(
        xscale="log",
        xlabel="peak learning rate",
        ylabel=f"best dev {metric} (seed 0)",
        title="Sensitivity: dev metric against learning rate (star: chosen)",
    )
    for e in done:
        dev = [np.array([(s, v) for s, v, _ in r["dev_curve"]]) for r in e.seeds]
        x, mean, lo, hi = _band(dev)
        dev_steps.plot(x, mean, **_style(e.optimizer))
        dev_steps.fill_between(x, lo, hi, color=COLORS[e.optimizer], alpha=0.12)
        ms = step_ms.get((w.name, e.optimizer), {}).get("step_ms")
        if ms:
            dev_secs.plot(x * ms / 1000, mean, **_style(e.optimizer))
            dev_secs.fill_between(x * ms / 1000, lo, hi, color=COLORS[e.optimizer], alpha=0.12)
        losses = [np.array(list(enumerate(r["loss_curve"]))) for r in e.seeds]
        lx, lmean, llo, lhi = _band(losses)
        loss_ax.plot((lx + 1) * 10, lmean, **_style(e.optimizer))
        loss_ax.fill_between((lx + 1) * 10, llo, lhi, color=COLORS[e.optimizer], alpha=0.12)
    for ax in (dev_steps, dev_secs):
        if math.isfinite(target):
            ax.axhline(target, color="grey", lw=0.8, ls=":")
    low = max(target - 0.08, 0) if math.isfinite(target) else None
    dev_steps.set(
        xlabel="optimizer steps",
        ylabel=f"dev {metric}",
        ylim=(low, None),
        title="Dev metric against steps (mean, min-max over seeds; dotted: target)",
    )
    dev_secs.set(
        xlabel="seconds (steps x interleaved step time, 1 thread)",
        ylabel=f"dev {metric}",
        ylim=(low, None),
        title="Dev metric against seconds" + ("" if step_ms else " (step times not measured yet)"),
    )
    loss_ax.set(
        xlabel="optimizer steps",
        ylabel="training loss (10-step means)",
        yscale="log",
        title="Training loss against steps (mean, min-max over seeds)",
    )
    names, medians, shares = [], [], []
    for e in done:
        steps = [reach(r, target) for r in e.seeds]
        hit = [s for s in steps if math.isfinite(s)]
        names.append(OPTIMIZERS[e.optimizer].label)
        medians.append(np.median(hit) if hit else np.nan)
        shares.append(f"{len(hit)}/{len(steps)}")
    y = np.arange(len(names))
    bars.barh(y, np.nan_to_num(medians, nan=0.0), color=[COLORS[e.optimizer] for e in done])
    for i, (m, share) in enumerate(zip(medians, shares, strict=True)):
        bars.text(
            (0 if math.isnan(m) else m) + w.steps * 0.01,
            i,
            f"{share} seeds" + (" (never)" if math.isnan(m) else ""),
            va="center",
            fontsize=8,
        )
    bars.set(
        yticks=y,
        yticklabels=names,
        xlim=(0, w.steps * 1.15),
        xlabel="median steps to target",
        title=f"Steps to the target dev {metric} {target:.3f}",
    )
    bars.invert_yaxis()
    for i, e in enumerate(done):
        tests = [r["test_at_best_dev"] for r in e.seeds]
        test_ax.errorbar(
            [np.mean(tests)],
            [i],
            xerr=[[np.mean(tests) - min(tests)], [max(tests) - np.mean(tests)]],
            fmt="o",
            color=COLORS[e.optimizer],
            capsize=3,
        )
        test_ax.scatter(tests, [i] * len(tests), s=8, color=COLORS[e.optimizer], alpha=0.5)
    test_ax.set(
        yticks=y,
        yticklabels=names,
        xlabel=f"test {metric} at best dev (seeds; bar: min-max)",
        title="Test at the best dev point",
    )
    test_ax.invert_yaxis()
    # the sensitivity curves name every optimizer that has finished a search; one still on its first has none yet
    handles, labels = sens.get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 11), fontsize=9, frameon=False)
    fig.suptitle(f"{w.name}: {w.steps} steps, {len(done)} of {len(w.optimizers)} optimizers with all seeds")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def overview(table: list[dict[str, Any]], workloads: list[str], path: Path) -> None:
    """Test metric minus Adam's, in points, per optimizer and workload (minus Adagrad's where Adam cannot train)."""
    labels = [o.label for o in OPTIMIZERS.values()]
    grid = np.full((len(labels), len(workloads)), np.nan)
    ticks = list(workloads)
    for j, w in enumerate(workloads):
        rows = {r["optimizer"]: r for r in table if r["workload"] == w and r["complete"]}
        sparse = any(r["model"] == "mlp_nb" for r in rows.values())  # sparse gradients: no Adam
        ref = "Adagrad" if sparse else "Adam"
        if ref not in rows:
            continue
        if sparse:
            ticks[j] = f"{w}\n(vs Adagrad)"
        for i, label in enumerate(labels):
            if label in rows:
                grid[i, j] = 100 * (rows[label]["test_mean"] - rows[ref]["test_mean"])
    fig, ax = plt.subplots(figsize=(1.6 * len(workloads) + 3, 6))
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(labels)):
        for j in range(len(workloads)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=9)
    ax.set(
        xticks=range(len(workloads)),
        xticklabels=ticks,
        yticks=range(len(labels)),
        yticklabels=labels,
        title="Test metric minus Adam's (points; mean over seeds at each optimizer's tuned setting)",
    )
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
