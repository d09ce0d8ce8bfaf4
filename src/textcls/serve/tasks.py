"""What a model's scores mean: how logits become probabilities, and the records the API answers with.

Every model textcls trains today is single-label: one softmax over the labels, the most probable one wins. A
multi-label task (a sigmoid per label, `threshold` choosing the labels) is one more class here, picked in `task_for`;
the request validation asks the task whether it takes a threshold, so nothing else needs to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from textcls.records import prediction_records


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


def task_for(kind: str, label_names: Sequence[str]) -> Task:
    """The task a model was trained for, by the name its backend reports."""
    if kind == SingleLabel.name:
        return SingleLabel(label_names)
    raise ValueError(f"unknown task {kind!r}")
