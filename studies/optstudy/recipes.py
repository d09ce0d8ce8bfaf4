"""Robust settings: for each config that sets an optimizer's rate and each optimizer, the learning rate that does best
across the workloads that config is for rather than on one, from the final learning-rate searches (seed 0, dev). The
default recipes are chosen from this table, so a setting that wins on one data set and fails on another is not picked.

Which workloads a config is for: an experiment config (`textcnn.yaml`, `mlp.yaml`), which users train on any data,
every workload of its model (sentences, documents, multi-label); a benchmark recipe stacked on it (`textcnn_rand.yaml`
for sentences), the workloads that stack it, so a short document budget does not move the sentence recipe's rate.

Robust rate: the lattice point, among those every workload of the config evaluated, with the smallest worst-case
shortfall from each workload's own best dev score (ties: the smallest mean shortfall). Only finished workloads (every
optimizer's setting chosen) count, so the table, and the recipes read from it, do not move while a workload runs. A
config with one workload has no row: there is nothing to be robust across.
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
    for (model, config), names in _configs([found[0].workload for found in by_workload.values() if found]).items():
        for opt in OPTIMIZERS:
            searches = {}
            for name in names:
                for e in by_workload[name]:
                    if e.optimizer == opt and e.plan.chosen is not None:
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
                    "config": config,
                    "optimizer": OPTIMIZERS[opt].label,
                    "workloads": ", ".join(searches),
                    "robust_lr": lr_of(k),
                    "per_workload_lr": ", ".join(f"{c.lr:g}" for _, c in searches.values()),
                    "worst_shortfall": max(shortfall[k]),
                    "mean_shortfall": sum(shortfall[k]) / len(shortfall[k]),
                }
            )
    return rows


def _configs(workloads: list[Workload]) -> dict[tuple[str, str], list[str]]:
    """(model, config file name) -> the names of the workloads that config is for, experiment configs first."""
    out: dict[tuple[str, str], list[str]] = {}
    for w in workloads:
        out.setdefault((w.model, Path(w.experiment).name), []).append(w.name)
    for w in workloads:
        for config in w.configs:
            out.setdefault((w.model, Path(config).name), []).append(w.name)
    return out


def section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = [
        "## Robust settings across workloads",
        "",
        "Per config and optimizer, the learning rate with the smallest worst-case dev shortfall (points, seed 0) "
        "from each workload's own best rate, among the rates every workload of the config tried. An experiment "
        "config (`textcnn.yaml`, `mlp.yaml`) is for every workload of its model; a benchmark recipe for the "
        "workloads that stack it; a config with one workload has no row. The rates in `configs/` are chosen from "
        "this table.",
        "",
        "| config | optimizer | workloads | robust lr | each workload's own lr | worst shortfall | mean shortfall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['optimizer']} | {r['workloads']} | {r['robust_lr']:g} | {r['per_workload_lr']} "
            f"| {100 * r['worst_shortfall']:.2f} | {100 * r['mean_shortfall']:.2f} |"
        )
    return "\n".join(lines)
