"""What a model's scores mean: how logits become probabilities, and the records the API answers with.

Single-label: one softmax over the labels, the most probable one wins. Multi-label: a sigmoid per label, and every
label whose probability reaches its threshold (the model's tuned one, or the request's `threshold`) is predicted.
The request validation asks the task whether it takes a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from textcls.records import multi_label_records, prediction_records


class Task(Protocol):
    name: str
    label_names: list[str]
    accepts_threshold: bool

    def probabilities(self, logits: np.ndarray) -> np.ndarray: ...

    def records(self, probs: np.ndarray, top_k: int | None, threshold: float | None) -> list[dict[str, Any]]: ...


class SingleLabel:
    """One softmax over the labels; the records of `Classifier.predict` (`label`, `probability`, `probabilities`)."""

    name = "single_label"
    accepts_threshold = False

    def __init__(self, label_names: Sequence[str]) -> None:
        self.label_names = list(label_names)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        scores = logits.astype(np.float32, copy=False)
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def records(self, probs: np.ndarray, top_k: int | None = None, threshold: float | None = None) -> list[dict]:
        return prediction_records(probs.tolist(), self.label_names, top_k)  # exactly Classifier.predict's


class MultiLabel:
    """A sigmoid per label; records `{"labels", "probabilities"}`, with `labels` in label order (possibly empty).

    Args:
        label_names: the names in output order.
        thresholds: each label's decision threshold (a request's `threshold` replaces them all).
        outputs: what the backend gives: "logits" (the sigmoid is applied here) or "probabilities" (an ONNX export,
            whose graph ends in the sigmoid).
    """

    name = "multi_label"
    accepts_threshold = True

    def __init__(self, label_names: Sequence[str], thresholds: Sequence[float], outputs: str = "logits") -> None:
        self.label_names = list(label_names)
        self.thresholds = [float(t) for t in thresholds]
        self.from_logits = outputs == "logits"

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        scores = logits.astype(np.float32, copy=False)
        if not self.from_logits:
            return scores
        # sigmoid(x) written with tanh, which cannot overflow for any logit
        return (0.5 * (1.0 + np.tanh(0.5 * scores.astype(np.float64)))).astype(np.float32)

    def records(self, probs: np.ndarray, top_k: int | None = None, threshold: float | None = None) -> list[dict]:
        thresholds = self.thresholds if threshold is None else [threshold] * len(self.label_names)
        return multi_label_records(probs.tolist(), self.label_names, thresholds, top_k)


def task_for(
    kind: str, label_names: Sequence[str], thresholds: Sequence[float] | None = None, outputs: str = "logits"
) -> Task:
    """The task a model was trained for, by the name its backend reports (with a multi-label model's thresholds
    and what its backend outputs)."""
    if kind == SingleLabel.name:
        return SingleLabel(label_names)
    if kind == MultiLabel.name:
        return MultiLabel(label_names, thresholds if thresholds is not None else [0.5] * len(label_names), outputs)
    raise ValueError(f"unknown task {kind!r}")
