"""The study's measures, from the runs' records and the tuning plans (studies/optstudy/search.py).

Per workload and optimizer: the chosen setting and its grid; best dev and test at best dev over the seeds (mean,
95 % confidence interval from Student's t); steps to a target (a fixed fraction of the best seed-mean dev metric any
optimizer reaches on that workload, AlgoPerf-style) and the share of seeds reaching it, and the same for a looser
target; the largest training-loss spike; the width of the learning-rate range within one point of the best
(sensitivity). Seconds come from the interleaved step-time benchmark (steptime.py), never from runs that shared the
machine.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from .search import BRACKET, MAX_POINTS, Plan, plan
from .space import LATTICE, OPTIMIZERS, lr_of
from .workloads import Workload

TARGET_FRACTION = 0.98
LOOSE_FRACTION = 0.90  # a second, looser target: where only one optimizer reaches the first, the others' speed
# Student's t, two-sided 95 %, by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (NaN for fewer than two values)."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    if len(values) < 2:
        return values[0], math.nan
    return statistics.fmean(values), _T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


@dataclass
class Entry:
    """One optimizer on one workload: its plan and the records of its chosen setting's seeds."""

    workload: Workload
    optimizer: str
    plan: Plan
    seeds: list[dict[str, Any]]


def scores_of(results: dict) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
    """workload -> optimizer -> (setting tag, seed) -> best dev metric (NaN unless the run finished), as the
    search reads them."""
    out: dict[str, dict[str, dict[tuple[str, int], float]]] = {}
    for (w, o, tag, seed), record in results.items():
        value = record["best_dev"] if record["status"] == "ok" else math.nan
        out.setdefault(w, {}).setdefault(o, {})[(tag, seed)] = value
    return out


def entries(
    workload: Workload, optimizers: list[str], results: dict, n_seeds: int, max_points: int = MAX_POINTS
) -> list[Entry]:
    out = []
    scores = scores_of(results)
    for opt in optimizers:
        if opt not in workload.optimizers:
            continue
        p = plan(workload, opt, scores.get(workload.name, {}).get(opt, {}), n_seeds, max_points)
        seeds = []
        if p.chosen is not None:
            seeds = [results[(workload.name, opt, p.chosen.tag(), s)] for s in p.seeds]
        out.append(Entry(workload, opt, p, seeds))
    return out


def reach(record: dict[str, Any], target: float) -> float:
    """Steps at the first evaluation at or above the target (NaN if never)."""
    for step, value, _ in record.get("dev_curve", []):
        if value >= target:
            return float(step)
    return math.nan


def target_of(done: list[Entry]) -> float:
    means = [mean_ci([r["best_dev"] for r in e.seeds])[0] for e in done if e.seeds]
    return TARGET_FRACTION * max(means) if means else math.nan


def lr_width(plan: Plan) -> float:
    """Decades of learning rate within BRACKET of the best, contiguous around it, in the final lr search."""
    if not plan.searches:
        return math.nan
    search = plan.searches[-1]
    best = search.scores[search.best]
    lo = hi = search.best
    while lo - 1 in search.scores and search.scores[lo - 1] >= best - BRACKET:
        lo -= 1
    while hi + 1 in search.scores and search.scores[hi + 1] >= best - BRACKET:
        hi += 1
    return (hi - lo) / LATTICE


def summary_row(entry: Entry, target: float, step_ms: dict[tuple[str, str], dict[str, float]]) -> dict[str, Any]:
    w, p = entry.workload, entry.plan
    search = p.searches[-1] if p.searches else None
    runs = entry.seeds
    best_dev, best_dev_ci = mean_ci([r["best_dev"] for r in runs])
    test, test_ci = mean_ci([r["test_at_best_dev"] for r in runs])
    steps = [reach(r, target) for r in runs]
    hit = [s for s in steps if math.isfinite(s)]
    loose = target / TARGET_FRACTION * LOOSE_FRACTION
    hit_loose = [s for s in (reach(r, loose) for r in runs) if math.isfinite(s)]
    timing = step_ms.get((w.name, entry.optimizer), {})
    ms = timing.get("step_ms", math.nan)
    row = {
        "workload": w.name,
        "model": w.model,
        "data": w.data,
        "optimizer": OPTIMIZERS[entry.optimizer].label,
        "lr_grid": " ".join(f"{lr_of(k):g}" for k in sorted(search.scores)) if search else "",
        "chosen_lr": f"{p.chosen.lr:g}" if p.chosen else "",
        "chosen_at_grid_edge": search.at_edge if search else "",
        "chosen_momentum": p.chosen.momentum if p.chosen else None,
        "chosen_beta2": p.chosen.beta2 if p.chosen else None,
        "chosen_eps": p.chosen.eps if p.chosen else None,
        "seeds": len(runs),
        "metric": w.metric,
        "best_dev_mean": best_dev,
        "best_dev_ci95": best_dev_ci,
        "test_mean": test,
        "test_ci95": test_ci,
        "test_std": statistics.stdev([r["test_at_best_dev"] for r in runs]) if len(runs) > 1 else math.nan,
        "test_spread": (max(r["test_at_best_dev"] for r in runs) - min(r["test_at_best_dev"] for r in runs))
        if runs
        else math.nan,
        "target_dev": target,
        "seeds_reaching_target": f"{len(hit)}/{len(runs)}",
        "steps_to_target_median": statistics.median(hit) if hit else math.nan,
        "seconds_to_target_median": statistics.median(hit) * ms / 1000 if hit else math.nan,
        "loose_target_dev": loose,
        "seeds_reaching_loose_target": f"{len(hit_loose)}/{len(runs)}",
        "steps_to_loose_target_median": statistics.median(hit_loose) if hit_loose else math.nan,
        "best_step_median": statistics.median(r["best_step"] for r in runs) if runs else math.nan,
        "best_at_last_eval": f"{sum(r['best_step'] == w.last_eval for r in runs)}/{len(runs)}",
        "loss_spike_max": max((r["loss_spike"] for r in runs), default=math.nan),
        "lr_width_decades": lr_width(p),
        "step_ms": ms,
        "optimizer_step_ms": timing.get("optimizer_step_ms", math.nan),
        "kernel": timing.get("kernel", ""),
        "state_bytes_per_param": timing.get("state_bytes_per_param", math.nan),
        "tuning_runs": None,  # filled by the caller, which sees every run
        "complete": p.chosen is not None,
    }
    return row


def short_budgets(table: list[dict[str, Any]], defs: dict[str, Workload]) -> list[dict[str, Any]]:
    """The best optimizer's row (by mean best dev) of each finished workload whose median best dev point is its last
    evaluation: a budget too short to show where the best optimizer levels off."""
    short = []
    for name, w in defs.items():
        rows = [r for r in table if r["workload"] == name]
        if len(rows) < len(w.optimizers) or not all(r["complete"] for r in rows):
            continue
        scored = [r for r in rows if math.isfinite(r["best_dev_mean"])]
        if scored:
            best = max(scored, key=lambda r: r["best_dev_mean"])
            if best["best_step_median"] >= w.last_eval:
                short.append(best)
    return short
