"""Robust settings: for each model and optimizer, the learning rate that does best across that model's workloads
rather than on one, from the final learning-rate searches (seed 0, dev). The default recipes are chosen from this
table, so a setting that wins on one data set and fails on another is not picked.

Robust rate: the lattice point, among those every workload of the model evaluated, with the smallest worst-case
shortfall from each workload's own best dev score (ties: the smallest mean shortfall). Only finished workloads (every
optimizer's setting chosen) count, so the table, and the recipes read from it, do not move while a workload runs.
"""

from __future__ import annotations

import math
from typing import Any

from .measures import Entry
from .space import OPTIMIZERS, lr_of


def finished(by_workload: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
    """The workloads whose every optimizer has a chosen setting."""
    return {
        name: found
        for name, found in by_workload.items()
        if found and set(found[0].workload.optimizers) <= {e.optimizer for e in found if e.plan.chosen is not None}
    }


def robust_rates(by_workload: dict[str, list[Entry]]) -> list[dict[str, Any]]:
    rows = []
    by_workload = finished(by_workload)
    models = sorted({found[0].workload.model for found in by_workload.values() if found})
    for model in models:
        for opt in OPTIMIZERS:
            searches = {}
            for name, found in by_workload.items():
                for e in found:
                    if e.workload.model == model and e.optimizer == opt and e.plan.chosen is not None:
                        searches[name] = (e.plan.searches[-1], e.plan.chosen)
            if len(searches) < 2:
                continue  # one workload: nothing to be robust across
            common = set.intersection(*(set(s.scores) for s, _ in searches.values()))
            if not common:
                continue
            shortfall = {
                k: [
                    s.scores[s.best] - s.scores[k] if math.isfinite(s.scores[k]) else math.inf
                    for s, _ in searches.values()
                ]
                for k in common
            }
            k = min(common, key=lambda k: (max(shortfall[k]), sum(shortfall[k])))
            rows.append(
                {
                    "model": model,
                    "optimizer": OPTIMIZERS[opt].label,
                    "workloads": ", ".join(searches),
                    "robust_lr": lr_of(k),
                    "per_workload_lr": ", ".join(f"{c.lr:g}" for _, c in searches.values()),
                    "worst_shortfall": max(shortfall[k]),
                    "mean_shortfall": sum(shortfall[k]) / len(shortfall[k]),
                }
            )
    return rows


def section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = [
        "## Robust settings across workloads",
        "",
        "Per model and optimizer, the learning rate with the smallest worst-case dev shortfall (points, seed 0) from "
        "each workload's own best rate, among the rates every workload tried. The recipes in `configs/` are chosen "
        "from this table.",
        "",
        "| model | optimizer | workloads | robust lr | each workload's own lr | worst shortfall | mean shortfall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['optimizer']} | {r['workloads']} | {r['robust_lr']:g} | {r['per_workload_lr']} "
            f"| {100 * r['worst_shortfall']:.2f} | {100 * r['mean_shortfall']:.2f} |"
        )
    return "\n".join(lines)
