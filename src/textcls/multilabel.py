"""Multi-label pieces of TextClassifier: the loss, the decision thresholds tuned on dev, and the validation and test
metrics (torchmetrics' Multilabel* classes, whose states DDP sums, so every figure is exact over the ranks)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelStatScores,
)

ThresholdMode = Literal["per_label", "global"]
# The candidate decision thresholds: 0.00, 0.01, ..., 1.00. The binned states hold [len(GRID), labels, 2, 2] counts,
# so dev sets of any size cost the same memory; the same grid is mAP's.
GRID = torch.arange(101, dtype=torch.float64).div(100).float()
# Grid indices in the order ties are broken: nearest 0.5 first, then the lower (more recall) of two as near. A label
# whose F1 is flat (e.g. no positive in dev) so keeps the untuned 0.5 instead of predicting every text.
_TIE_ORDER = torch.tensor(sorted(range(len(GRID)), key=lambda i: (abs(i - 50), i)))
_TIE_TOLERANCE = 1e-12  # F1 values this close count as equal (sums in another order differ in the last bits)


def multilabel_loss(
    logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None, label_smoothing: float
) -> torch.Tensor:
    """Binary cross-entropy with logits over every (text, label) pair; `pos_weight` weighs each label's positives
    and label smoothing moves every target `label_smoothing / 2` toward 0.5."""
    targets = labels.float()
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / 2
    return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos_weight)


def f1_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """F1 per entry, 0 where it is undefined (no positive and none predicted), as torchmetrics' zero_division=0."""
    denominator = 2 * tp + fp + fn
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 0.0)


def choose_thresholds(confmat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From binned counts [len(GRID), C, 2, 2] (torchmetrics' layout: [threshold, label, target, prediction]), the
    grid index maximising each label's F1 [C] and the one maximising macro-F1 (a 0-d index); ties as _TIE_ORDER."""
    counts = confmat.double()
    f1 = f1_from_counts(counts[..., 1, 1], counts[..., 0, 1], counts[..., 1, 0])  # [T, C]
    return _best(f1), _best(f1.mean(dim=1, keepdim=True))[0]


def _best(scores: torch.Tensor) -> torch.Tensor:
    """Per column of scores [T, K], the first index in _TIE_ORDER among the maximal ones."""
    ordered = scores[_TIE_ORDER.to(scores.device)]
    top = ordered >= ordered.max(dim=0, keepdim=True).values - _TIE_TOLERANCE
    return _TIE_ORDER.to(scores.device)[top.int().argmax(dim=0)]  # argmax: the first True


def grid_index(thresholds: torch.Tensor) -> torch.Tensor:
    """The grid point nearest each threshold (thresholds tuned here are grid points; others are rounded)."""
    return (thresholds.double() * 100).round().clamp(0, len(GRID) - 1).long()


class MultiLabelDevMetrics(nn.Module):
    """Validation: binned per-label counts over GRID, from which the thresholds are tuned and `f1_macro`, `f1_micro`
    computed at the thresholds chosen, and the macro average precision `map` (torchmetrics, over the same grid)."""

    def __init__(self, num_labels: int, prefix: str = "val/") -> None:
        super().__init__()
        self.prefix = prefix
        self.curve = MultilabelAveragePrecision(num_labels, thresholds=GRID.tolist(), average="macro")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.curve.update(torch.sigmoid(logits.float()), labels.long())

    def compute(self, thresholds: torch.Tensor, tune: ThresholdMode | None) -> dict[str, torch.Tensor]:
        """The epoch's metrics; with `tune`, first writes the thresholds chosen on these counts into `thresholds`."""
        mean_ap = self.curve.compute()  # synced over the ranks, then unsynced
        with self.curve.sync_context(should_unsync=True):
            confmat = self.curve.confmat.clone()
        if tune is not None:
            per_label, overall = choose_thresholds(confmat)
            index = per_label if tune == "per_label" else overall.expand_as(per_label)
            thresholds.copy_(GRID.to(thresholds.device)[index])
        counts = confmat.double()[grid_index(thresholds), torch.arange(confmat.shape[1], device=confmat.device)]
        tp, fp, fn = counts[:, 1, 1], counts[:, 0, 1], counts[:, 1, 0]
        return {
            f"{self.prefix}f1_macro": f1_from_counts(tp, fp, fn).mean().float(),
            f"{self.prefix}f1_micro": f1_from_counts(tp.sum(), fp.sum(), fn.sum()).float(),
            f"{self.prefix}map": mean_ap.float(),
        }

    def reset(self) -> None:
        self.curve.reset()


class MultiLabelTestMetrics(nn.Module):
    """Test: every label decided at its threshold, then torchmetrics' macro / micro F1, subset accuracy (exact
    match), Hamming loss and, over GRID, the macro average precision."""

    def __init__(self, num_labels: int, prefix: str = "test/") -> None:
        super().__init__()
        self.decided = MetricCollection(
            {
                "f1_macro": MultilabelF1Score(num_labels, average="macro"),
                "f1_micro": MultilabelF1Score(num_labels, average="micro"),
                "subset_acc": MultilabelExactMatch(num_labels),
                "hamming": MultilabelHammingDistance(num_labels, average="micro"),
            },
            prefix=prefix,
        )
        self.map = MultilabelAveragePrecision(num_labels, thresholds=GRID.tolist(), average="macro")
        self.prefix = prefix

    def update(self, logits: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor) -> None:
        probs, target = torch.sigmoid(logits.float()), labels.long()
        self.decided.update(decide(probs, thresholds), target)
        self.map.update(probs, target)

    def compute(self) -> dict[str, torch.Tensor]:
        return {**self.decided.compute(), f"{self.prefix}map": self.map.compute()}

    def reset(self) -> None:
        self.decided.reset()
        self.map.reset()


def decide(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The predicted label sets as 0/1 ints [B, C]: probability >= that label's threshold."""
    return (probs >= thresholds.to(probs.device)).int()


def label_stat_scores(num_labels: int) -> MultilabelStatScores:
    """Per-label tp, fp, tn, fn, support of decided (0/1) predictions, summed over the ranks (the report's table)."""
    return MultilabelStatScores(num_labels, average=None)
