"""Multi-label pieces of the accuracy harness (benchmarks/accuracy.py): the JSON Lines split, the metrics and the
decision thresholds tuned on dev.

A folder with train.jsonl dev.jsonl test.jsonl (one object per line, a `text` string and a `labels` list of strings,
possibly empty) is the multi-label protocol. Labels are those of the training split, sorted by name; a dev or test row
naming another is refused, as textcls refuses it.

Metrics follow torchmetrics' Multilabel* definitions (what textcls logs): macro-F1 is the mean over every label of
2tp / (2tp + fp + fn), 0 for a label never present nor predicted; micro-F1 pools the counts; mAP is the mean over the
labels present in the split of the step-wise average precision (as scikit-learn computes it); subset accuracy counts
rows whose predicted set is exactly the gold set; Hamming loss is the fraction of wrong (row, label) cells.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

ML_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl")
# The baselines' decision thresholds: every label gets the grid point with the best dev F1 (macro-F1 is the mean of
# the per-label F1, so this maximises dev macro-F1); the one global threshold is the grid point of best dev macro-F1.
# The fine low end is for fastText ova, whose best thresholds for rare labels lie below 0.05.
THRESHOLD_GRID = [0.01, 0.02, 0.03, 0.04] + [round(0.05 * i, 2) for i in range(1, 20)]
THRESHOLD_NOTE = "per-label, on dev, grid 0.01..0.04 step 0.01 and 0.05..0.95 step 0.05"
# Results-file columns both protocols share: a row's identity, and what the run took and saw.
ROW_KEY = ["dataset", "protocol", "config", "seed", "fold", "n_folds"]
RUN_FIELDS = ["epochs", "best_epoch", "fit_seconds", "n_train", "n_dev", "n_test"]
RECORD_FIELDS = ["params", "config_hash", "finished_utc"]
FIELDS_ML = [
    *ROW_KEY,
    "dev_f1_macro",
    "test_f1_macro",
    "test_f1_micro",
    "test_map",
    "test_subset_acc",
    "test_hamming",
    "thresholds",
    *RUN_FIELDS,
    "n_labels",
    *RECORD_FIELDS,
]
# What a textcls multi-label run logs (the names of issue 15) and the row field each one fills.
TEXTCLS_TEST_METRICS = {
    "test/f1_macro": "test_f1_macro",
    "test/f1_micro": "test_f1_micro",
    "test/map": "test_map",
    "test/subset_acc": "test_subset_acc",
    "test/hamming": "test_hamming",
}
TEXTCLS_MONITOR = "val/f1_macro"


class MultiLabelDataError(Exception):
    """A malformed multi-label file: one line naming the file and line (the harness prints it as `error: ...`)."""


def read_jsonl(path: Path) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise MultiLabelDataError(f"{path}:{number}: not a JSON object ({err.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise MultiLabelDataError(f"{path}:{number}: expected an object with a string 'text'")
                labels = obj.get("labels")
                if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                    raise MultiLabelDataError(
                        f"{path}:{number}: 'labels' must be a list of strings (possibly empty), found {labels!r}"
                    )
                rows.append((obj["text"], labels))
    except UnicodeDecodeError as err:
        raise MultiLabelDataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return rows


def check_split(train: Path, dev: Path, test: Path) -> tuple[list[str], tuple[int, int, int]]:
    """The label names (sorted) and the row counts; refuses a dev/test label that training never saw."""
    train_rows = read_jsonl(train)
    labels = sorted({x for _, ls in train_rows for x in ls})
    if not labels:
        raise MultiLabelDataError(f"{train}: no row carries a label")
    known = set(labels)
    sizes = [len(train_rows)]
    for path in (dev, test):
        rows = read_jsonl(path)
        for number, (_, ls) in enumerate(rows, 1):
            unseen = sorted(set(ls) - known)
            if unseen:
                raise MultiLabelDataError(f"{path}: row {number} has label(s) {unseen} that {train.name} never has")
        sizes.append(len(rows))
    return labels, (sizes[0], sizes[1], sizes[2])


def label_matrix(rows: list[tuple[str, list[str]]], labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    y = np.zeros((len(rows), len(labels)), dtype=bool)
    for r, (_, ls) in enumerate(rows):
        y[r, [index[x] for x in ls]] = True
    return y


def _f1_per_label_per_threshold(prob: np.ndarray, gold: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of each label (rows) at each threshold (columns)."""
    pred = prob[:, :, None] >= grid[None, None, :]
    g = gold[:, :, None]
    tp = (pred & g).sum(0)
    fp = (pred & ~g).sum(0)
    fn = (~pred & g).sum(0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(dev_prob: np.ndarray, dev_gold: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-label thresholds and one global threshold from THRESHOLD_GRID, best dev F1; ties go to the point nearest
    0.5 (a label absent from dev ties everywhere and keeps 0.5)."""
    grid = np.asarray(THRESHOLD_GRID)
    f1 = _f1_per_label_per_threshold(dev_prob, dev_gold, grid)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")
    per_label = grid[order[np.argmax(f1[:, order], axis=1)]]
    macro = f1.mean(0)
    global_t = float(grid[order[np.argmax(macro[order])]])
    return per_label, global_t


def average_precision(scores: np.ndarray, gold: np.ndarray) -> float:
    """Step-wise AP of one label: sum over distinct score thresholds of (recall step) x precision."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gold[order]
    tp = np.cumsum(g)
    fp = np.cumsum(~g)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each run of equal scores
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / g.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def scores(prob: np.ndarray, gold: np.ndarray, thresholds: np.ndarray | float) -> dict[str, float]:
    pred = prob >= np.broadcast_to(np.asarray(thresholds, dtype=float), (prob.shape[1],))[None, :]
    tp = (pred & gold).sum(0)
    fp = (pred & ~gold).sum(0)
    fn = (~pred & gold).sum(0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    pooled = 2 * tp.sum() + fp.sum() + fn.sum()
    present = [j for j in range(gold.shape[1]) if gold[:, j].any()]
    return {
        "f1_macro": float(f1.mean()),
        "f1_micro": float(2 * tp.sum() / pooled) if pooled else 0.0,
        "map": float(np.mean([average_precision(prob[:, j], gold[:, j]) for j in present])) if present else 0.0,
        "subset_acc": float((pred == gold).all(1).mean()),
        "hamming": float((pred != gold).mean()),
    }


def evaluate(
    labels: list[str], dev: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Thresholds tuned on dev (probabilities, gold), applied to test: the row's figures and the extra params."""
    per_label, global_t = tune_thresholds(*dev)
    dev_s, test_s = scores(*dev, per_label), scores(*test, per_label)
    test_global = scores(*test, global_t)
    row = {f"test_{k}": v for k, v in test_s.items()}
    row |= {"dev_f1_macro": dev_s["f1_macro"], "thresholds": THRESHOLD_NOTE, "n_labels": len(labels)}
    params = {
        "thresholds": dict(zip(labels, per_label.tolist(), strict=True)),
        "global_threshold": global_t,
        "test_f1_macro_at_global": round(test_global["f1_macro"], 4),
        "test_f1_micro_at_global": round(test_global["f1_micro"], 4),
    }
    return row, params


def summary_table(files: list[tuple[str, list[dict[str, str]]]]) -> str:
    """The multi-label table of the harness's summary: one line per results file (method)."""
    lines = [
        "| dataset | config | protocol | test macro-F1 % (mean ± std over seeds) | test micro-F1 % | test mAP % "
        "| subset acc % | Hamming loss % | dev macro-F1 % | thresholds | seeds | median fit s | total fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, rows in files:
        macro = [float(r["test_f1_macro"]) for r in rows]
        std = statistics.stdev(macro) if len(macro) > 1 else 0.0
        fits = [float(r["fit_seconds"]) for r in rows]
        cells = [_pct_mean(rows, k) for k in ("test_f1_micro", "test_map", "test_subset_acc", "test_hamming")]
        lines.append(
            f"| {rows[0]['dataset']} | {stem} | {rows[0]['protocol']} | {100 * statistics.fmean(macro):.2f} ± "
            f"{100 * std:.2f} | {' | '.join(cells)} | {_pct_mean(rows, 'dev_f1_macro')} | {rows[0]['thresholds']} "
            f"| {len({r['seed'] for r in rows})} | {statistics.median(fits):.1f} | {sum(fits):.0f} |"
        )
    return "\n".join(lines) + "\n"


def _pct_mean(rows: list[dict[str, str]], key: str) -> str:
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "nan")]
    return f"{100 * statistics.fmean(values):.2f}" if values else "–"
