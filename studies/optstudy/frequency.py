"""The frequency test (Kunstner et al. 2024: heavy-tailed class and word frequencies leave SGD slow on the rare ones).

SGD against Adam on the test split:
- by word frequency: each test sentence is put in a bucket by how often its rarest known word occurs in training;
  accuracy and loss per bucket, from the best checkpoints of the chosen settings' seeds on FREQUENCY_WORKLOAD;
- by class frequency: GoEmotions' labels in three groups by training frequency; test F1 per group, from every
  optimizer's seeds (the per-label reports the runs keep).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .measures import entries, mean_ci
from .runner import Job, split_files
from .space import OPTIMIZERS
from .workloads import FREQUENCY_OPTIMIZERS, FREQUENCY_WORKLOAD

WORD_BUCKETS = ((1, 2), (3, 9), (10, 99), (100, math.inf))  # training count of the rarest known word
CLASS_WORKLOAD = "goemotions-mlp"


def _rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as handle:
        return [(r["label"], r["text"]) for r in csv.DictReader(handle)]


def word_buckets(
    results: dict, defs: dict, runs_root: Path, data_root: Path, n_seeds: int, max_grid: int
) -> list[dict[str, Any]]:
    from textcls.inference import load_classifier

    workload = defs[FREQUENCY_WORKLOAD]
    found = {
        e.optimizer: e for e in entries(workload, list(FREQUENCY_OPTIMIZERS), results, n_seeds, max_grid) if e.seeds
    }
    if set(found) != set(FREQUENCY_OPTIMIZERS):
        return []
    files = split_files(workload, 0, data_root, runs_root)
    train, test = _rows(files["train_file"]), _rows(files["test_file"])
    out: list[dict[str, Any]] = []
    counts: Counter[int] | None = None
    for opt, entry in found.items():
        per_seed: dict[str, list[tuple[float, float]]] = {}
        for record in entry.seeds:
            ckpt = Job(workload, opt, entry.plan.chosen, record["seed"]).folder(runs_root) / "best.ckpt"
            if not ckpt.is_file():
                return []
            clf = load_classifier(ckpt)
            if counts is None:  # one vocabulary for every seed: it is built from the same training split
                ids = clf.encode([t for _, t in train]).numpy()
                counts = Counter(ids[ids != clf.tokenizer.pad_id].tolist())
                counts.pop(clf.tokenizer.unk_id, None)  # an unknown word is no word the model has seen
                test_ids = clf.encode([t for _, t in test]).numpy()
                rarest = np.array([min((counts[i] for i in row if counts[i] > 0), default=0) for row in test_ids])
            probs = clf.predict_proba([t for _, t in test])
            gold = np.array([clf.label_names.index(label) for label, _ in test])
            correct = probs.argmax(1) == gold
            loss = -np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, None))
            for lo, hi in WORD_BUCKETS:
                mask = (rarest >= lo) & (rarest <= hi)
                per_seed.setdefault(_bucket(lo, hi), []).append((float(correct[mask].mean()), float(loss[mask].mean())))
        for lo, hi in WORD_BUCKETS:
            name = _bucket(lo, hi)
            acc, acc_ci = mean_ci([a for a, _ in per_seed[name]])
            nll, _ = mean_ci([b for _, b in per_seed[name]])
            n = int(((rarest >= lo) & (rarest <= hi)).sum())
            out.append({"test": "word", "optimizer": OPTIMIZERS[opt].label, "bucket": name, "examples": n,
                        "metric": acc, "ci95": acc_ci, "loss": nll, "seeds": len(per_seed[name])})  # fmt: skip
    return out


def _bucket(lo: float, hi: float) -> str:
    return f"{lo:g}+" if math.isinf(hi) else f"{lo:g}-{hi:g}"


def class_buckets(
    results: dict, defs: dict, runs_root: Path, data_root: Path, n_seeds: int, max_grid: int
) -> list[dict[str, Any]]:
    workload = defs[CLASS_WORKLOAD]
    train = data_root / workload.data / "train.jsonl"
    if not train.is_file():
        return []
    freq: Counter[str] = Counter()
    with train.open() as handle:
        for line in handle:
            freq.update(json.loads(line)["labels"])
    ranked = sorted(freq, key=lambda label: freq[label])
    thirds = {label: min(3 * i // len(ranked), 2) for i, label in enumerate(ranked)}
    names = ("rare third", "middle third", "frequent third")
    out = []
    for entry in entries(workload, list(OPTIMIZERS), results, n_seeds, max_grid):
        per_seed: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for record in entry.seeds:
            folder = Job(workload, entry.optimizer, entry.plan.chosen, record["seed"]).folder(runs_root)
            report = folder / "test_per_label.csv"
            if not report.is_file():
                break
            with report.open(newline="") as handle:
                f1 = {r["label"]: float(r["f1"]) for r in csv.DictReader(handle) if r["label"] in thirds}
            for group in per_seed:
                per_seed[group].append(float(np.mean([v for k, v in f1.items() if thirds[k] == group])))
        else:
            if not entry.seeds:
                continue
            for group, values in per_seed.items():
                mean, ci = mean_ci(values)
                members = [k for k in ranked if thirds[k] == group]
                out.append({"test": "class", "optimizer": OPTIMIZERS[entry.optimizer].label, "bucket": names[group],
                            "examples": sum(freq[k] for k in members), "metric": mean, "ci95": ci,
                            "loss": math.nan, "seeds": len(values)})  # fmt: skip
    return out


def analyse(results: dict, defs: dict, runs_root: Path, data_root: Path, out: Path, n_seeds: int, max_grid: int) -> str:
    """Write frequency.csv and return the report page's section (empty until the runs exist)."""
    rows = word_buckets(results, defs, runs_root, data_root, n_seeds, max_grid)
    rows += class_buckets(results, defs, runs_root, data_root, n_seeds, max_grid)
    if not rows:
        return ""
    with (out / "frequency.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["## The frequency test", ""]
    words = [r for r in rows if r["test"] == "word"]
    if words:
        lines += [
            f"`{FREQUENCY_WORKLOAD}`, test sentences by the training count of their rarest known word; accuracy "
            "(mean ± 95 % CI over seeds) and mean test loss of the best-dev checkpoints:",
            "",
            "| rarest word seen | sentences | " + " | ".join(f"{o} acc | {o} loss" for o in _labels(words)) + " |",
            "|---|---|" + "---|---|" * len(_labels(words)),
        ]
        for lo, hi in WORD_BUCKETS:
            cells = {r["optimizer"]: r for r in words if r["bucket"] == _bucket(lo, hi)}
            first = next(iter(cells.values()))
            lines.append(f"| {_bucket(lo, hi)} times | {first['examples']} | " + " | ".join(
                f"{100 * cells[o]['metric']:.1f} ± {100 * cells[o]['ci95']:.1f} | {cells[o]['loss']:.3f}"
                for o in _labels(words)) + " |")  # fmt: skip
        lines.append("")
    classes = [r for r in rows if r["test"] == "class"]
    if classes:
        lines += [
            f"`{CLASS_WORKLOAD}`, test F1 averaged over the labels of each third of the 28 labels ranked by training "
            "frequency (mean ± 95 % CI over seeds):",
            "",
            "| optimizer | rare third | middle third | frequent third |",
            "|---|---|---|---|",
        ]
        for label in _labels(classes):
            cells = {r["bucket"]: r for r in classes if r["optimizer"] == label}
            lines.append(f"| {label} | " + " | ".join(
                f"{100 * cells[b]['metric']:.1f} ± {100 * cells[b]['ci95']:.1f}"
                for b in ("rare third", "middle third", "frequent third")) + " |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _labels(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["optimizer"] for r in rows))
