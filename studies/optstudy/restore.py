"""The published runs as finished runs: docs/optimizer_study/runs.csv and curves.csv.gz hold every field a run's
result.json has, so a fresh clone (or a machine that lost runs/) resumes the study where it was published instead
of repeating hours of training; per_label.csv.gz gives GoEmotions' runs their per-label test reports back. A run is
restored only where its folder has no result.json, and never where the study reads more than was published: the
frequency test's checkpoints, or a multi-label run's per-label report that per_label.csv.gz lacks.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .frequency import CLASS_WORKLOAD
from .runner import Job
from .space import Setting
from .workloads import FREQUENCY_OPTIMIZERS, FREQUENCY_WORKLOAD, WORKLOADS, Workload

NUMBERS = ("best_dev", "final_dev", "test_at_best_dev", "loss_spike", "final_train_loss", "train_seconds",
           "wall_seconds")  # fmt: skip


def setting_of(tag: str) -> Setting:
    """The inverse of Setting.tag(): "k-6", "k-4_m0.9", "k-9_b0.99_e1e-06"."""
    head, *rest = tag.split("_")
    given = {part[0]: float(part[1:]) for part in rest}
    return Setting(int(head[1:]), given.get("m"), given.get("b"), given.get("e"))


PER_LABEL_FIELDS = ["label", "precision", "recall", "f1", "support"]  # test_per_label.csv's columns


def _needs_artifacts(row: dict[str, str], per_label: dict) -> bool:
    if row["workload"] == CLASS_WORKLOAD:
        return _key(row) not in per_label
    frequency = row["workload"] == FREQUENCY_WORKLOAD and row["optimizer"] in FREQUENCY_OPTIMIZERS
    return frequency and row.get("role") in ("chosen", "seed")


def _number(text: str) -> float:
    return float(text) if text else math.nan


def _record(row: dict[str, str], setting: Setting, budget: int, curves: dict[str, list]) -> dict[str, Any]:
    record: dict[str, Any] = {key: _number(row[key]) for key in NUMBERS}
    record.update(
        status=row["status"],
        best_step=int(row["best_step"]) if row["best_step"] else None,
        steps=int(row["steps"]) if row["steps"] else 0,
        dev_curve=curves["dev"],
        loss_curve=curves["train_loss_10"],
        workload=row["workload"],
        optimizer=row["optimizer"],
        setting=row["setting"],
        lr=setting.lr,
        momentum=setting.momentum,
        beta2=setting.beta2,
        eps=setting.eps,
        seed=int(row["seed"]),
        fold=int(row["fold"]),
        budget=budget,
        restored_from="docs/optimizer_study/runs.csv",
    )
    if row.get("error"):
        record["error"] = row["error"]
    return record


def _key(row: dict[str, str]) -> tuple[str, str, str, str]:
    return row["workload"], row["optimizer"], row["setting"], row["seed"]


def _per_label(path: Path) -> dict[tuple[str, str, str, str], list[list[str]]]:
    out: dict[tuple[str, str, str, str], list[list[str]]] = defaultdict(list)
    if path.is_file():
        with gzip.open(path, "rt", newline="") as handle:
            for r in csv.DictReader(handle):
                out[_key(r)].append([r[f] for f in PER_LABEL_FIELDS])
    return out


def _curves(path: Path) -> dict[tuple[str, str, str, str], dict[str, list]]:
    out: dict[tuple[str, str, str, str], dict[str, list]] = defaultdict(lambda: {"dev": [], "train_loss_10": []})
    if not path.is_file():
        return out
    with gzip.open(path, "rt", newline="") as handle:
        for r in csv.DictReader(handle):
            curve = out[(r["workload"], r["optimizer"], r["setting"], r["seed"])]
            if r["kind"] == "dev":
                curve["dev"].append([int(r["step"]), float(r["value"]), float(r["train_seconds"])])
            else:
                curve["train_loss_10"].append(float(r["value"]))
    return out


def restore_published(published: Path, runs_root: Path, workloads: dict[str, Workload]) -> int:
    """Writes result.json for each published run of these workloads (at their budgets) that runs_root lacks;
    returns how many."""
    runs_csv = published / "runs.csv"
    if not runs_csv.is_file():
        return 0
    with runs_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    curves = _curves(published / "curves.csv.gz")
    per_label = _per_label(published / "per_label.csv.gz")
    restored = 0
    for row in rows:
        workload = workloads.get(row["workload"])
        if workload is None or _needs_artifacts(row, per_label):
            continue
        # rows written before runs.csv had a budget column are the published study's, at its default budgets
        budget = int(row.get("budget") or WORKLOADS[workload.name].steps)
        if budget != workload.steps:
            continue
        setting = setting_of(row["setting"])
        folder = Job(workload, row["optimizer"], setting, int(row["seed"])).folder(runs_root)
        if (folder / "result.json").is_file():
            continue
        key = _key(row)
        folder.mkdir(parents=True, exist_ok=True)
        if key in per_label:  # before result.json: a run is finished only once all it needs is there
            with (folder / "test_per_label.csv").open("w", newline="") as handle:
                csv.writer(handle).writerows([PER_LABEL_FIELDS, *per_label[key]])
        tmp = folder / "result.json.tmp"
        tmp.write_text(json.dumps(_record(row, setting, budget, curves[key])))
        tmp.replace(folder / "result.json")
        restored += 1
    return restored
