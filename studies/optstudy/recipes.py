"""Robust settings: for each recipe and optimizer, the learning rate that does best across the workloads that train
that recipe rather than on one, from the final learning-rate searches (seed 0, dev). The default recipes are chosen
from this table, so a setting that wins on one data set and fails on another is not picked. A recipe is the model's
experiment config plus the benchmark config stacked on it: the sentence TextCNN (`textcnn_rand.yaml`: SST-2, MR) and
the document one (`textcnn_imdb.yaml`: IMDB, 400 tokens a review) are tuned for different data, so a short document
budget does not move the sentence recipe's rate, nor the reverse.

Robust rate: the lattice point, among those every workload of the recipe evaluated, with the smallest worst-case
shortfall from each workload's own best dev score (ties: the smallest mean shortfall). Only finished workloads (every
optimizer's setting chosen) count, so the table, and the recipes read from it, do not move while a workload runs. A
recipe with one workload has no row: there is nothing to be robust across.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .measures import Entry
from .space import OPTIMIZERS, lr_of
from .workloads import Workload


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
    recipes = sorted({_recipe(found[0].workload) for found in by_workload.values() if found})
    for model, recipe in recipes:
        for opt in OPTIMIZERS:
            searches = {}
            for name, found in by_workload.items():
                for e in found:
                    if _recipe(e.workload) == (model, recipe) and e.optimizer == opt and e.plan.chosen is not None:
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
                    "recipe": recipe,
                    "optimizer": OPTIMIZERS[opt].label,
                    "workloads": ", ".join(searches),
                    "robust_lr": lr_of(k),
                    "per_workload_lr": ", ".join(f"{c.lr:g}" for _, c in searches.values()),
                    "worst_shortfall": max(shortfall[k]),
                    "mean_shortfall": sum(shortfall[k]) / len(shortfall[k]),
                }
            )
    return rows


def _recipe(workload: Workload) -> tuple[str, str]:
    """(model, the config files its runs stack before the optimizer's, by name)."""
    return workload.model, " + ".join(Path(c).name for c in (workload.experiment, *workload.configs))


def section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = [
        "## Robust settings across workloads",
        "",
        "Per recipe and optimizer, the learning rate with the smallest worst-case dev shortfall (points, seed 0) "
        "from each workload's own best rate, among the rates every workload of the recipe tried. The recipes in "
        "`configs/` are chosen from this table; a recipe trained on one workload only has no row.",
        "",
        "| recipe | optimizer | workloads | robust lr | each workload's own lr | worst shortfall | mean shortfall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['optimizer']} | {r['workloads']} | {r['robust_lr']:g} | {r['per_workload_lr']} "
            f"| {100 * r['worst_shortfall']:.2f} | {100 * r['mean_shortfall']:.2f} |"
        )
    return "\n".join(lines)
