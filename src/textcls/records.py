"""The shape of a prediction, shared by the Python API and the server (plain Python: no torch needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def prediction_records(probs: Sequence[Sequence[float]], names: Sequence[str], top_k: int | None = None) -> list[dict]:
    """Per text: the most probable label, its probability, and every label's (or the `top_k` most probable)."""
    num_classes = len(names)
    records = []
    for row in probs:
        best = max(range(num_classes), key=row.__getitem__)
        records.append({"label": names[best], "probability": row[best], "probabilities": _shown(row, names, top_k)})
    return records


def multi_label_records(
    probs: Sequence[Sequence[float]],
    names: Sequence[str],
    thresholds: Sequence[float],
    top_k: int | None = None,
) -> list[dict]:
    """Per text: `labels`, every label whose probability reaches its threshold (a list in label order, possibly
    empty), and `probabilities`: every label's (or the `top_k` most probable, most probable first)."""
    records = []
    for row in probs:
        chosen = [name for name, p, t in zip(names, row, thresholds, strict=True) if p >= t]
        records.append({"labels": chosen, "probabilities": _shown(row, names, top_k)})
    return records


def _shown(row: Sequence[float], names: Sequence[str], top_k: int | None) -> dict[str, float]:
    if top_k is None:
        return dict(zip(names, row, strict=True))
    order = sorted(range(len(names)), key=lambda i: -row[i])[:top_k]
    return {names[i]: row[i] for i in order}


def threshold_problem(value: Any) -> str | None:
    """Why `value` cannot be a decision threshold (a number from 0 to 1), or None when it can."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number from 0 to 1, got {value!r}"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return f"must be from 0 to 1, got {value!r}"
    return None


def thresholds_problem(values: Any, num_labels: int) -> str | None:
    """Why `values` cannot be the per-label thresholds of a model with `num_labels` labels, or None when they can."""
    if not isinstance(values, (list, tuple)) or len(values) != num_labels:
        size = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
        return f"the thresholds must be {num_labels} numbers (one per label), got {size}"
    for i, value in enumerate(values):
        problem = threshold_problem(value)
        if problem is not None:
            return f"threshold {i} {problem}"
    return None
