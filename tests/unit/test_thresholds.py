"""The multi-label decision thresholds tuned on dev (textcls.multilabel): the search against a brute-force search in
plain Python over the same grid, and the validation scores at the thresholds chosen against plain-Python formulas."""

from __future__ import annotations

import pytest
import torch

from textcls.multilabel import GRID, MultiLabelDevMetrics, choose_thresholds

CANDIDATES = GRID.tolist()  # float32 values as Python floats: `p >= t` compares as torch does


def random_case(seed: int, rows: int, labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, labels, generator=generator) * 2
    target = (torch.rand(rows, labels, generator=generator) < 0.3).float()
    logits += target * torch.rand(labels, generator=generator) * 3  # some labels are easier than others
    if seed % 3 == 0:
        target[:, 0] = 0  # a label without a positive: its F1 is 0 everywhere
    return logits, target


def f1(probs: list[float], truth: list[float], threshold: float) -> float:
    tp = sum(p >= threshold and y == 1 for p, y in zip(probs, truth, strict=True))
    fp = sum(p >= threshold and y == 0 for p, y in zip(probs, truth, strict=True))
    fn = sum(p < threshold and y == 1 for p, y in zip(probs, truth, strict=True))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def best(scores: list[float]) -> int:
    """The index of the best score; among ties (within 1e-12), the threshold nearest 0.5, then the lower."""
    top = max(scores)
    tied = [i for i, score in enumerate(scores) if score >= top - 1e-12]
    return min(tied, key=lambda i: (abs(CANDIDATES[i] - 0.5), CANDIDATES[i]))


def brute_force(probs: torch.Tensor, target: torch.Tensor) -> tuple[list[int], int]:
    columns = [(probs[:, c].tolist(), target[:, c].tolist()) for c in range(probs.shape[1])]
    table = [[f1(p, y, t) for t in CANDIDATES] for p, y in columns]  # [label][threshold]
    per_label = [best(row) for row in table]
    macro = [sum(row[i] for row in table) / len(table) for i in range(len(CANDIDATES))]
    return per_label, best(macro)


def binned_counts(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    metrics = MultiLabelDevMetrics(target.shape[1])
    metrics.update(logits, target)
    return metrics.curve.confmat


@pytest.mark.parametrize("seed", range(8))
def test_search_matches_a_brute_force_search_over_the_grid(seed: int) -> None:
    logits, target = random_case(seed, rows=25 + 7 * seed, labels=2 + seed % 4)
    per_label, overall = choose_thresholds(binned_counts(logits, target))
    expected_per_label, expected_overall = brute_force(torch.sigmoid(logits), target)
    assert per_label.tolist() == expected_per_label
    assert int(overall) == expected_overall


def test_ties_go_to_the_threshold_nearest_one_half() -> None:
    # Label 0 has no positive: F1 is 0 at every threshold, so it keeps 0.5 rather than predicting every text.
    # Label 1 is separated perfectly by any threshold in (0.2, 0.8]: the tied candidate nearest 0.5 is 0.5 itself.
    probs = torch.tensor([[0.1, 0.9], [0.3, 0.8], [0.2, 0.2], [0.4, 0.1]])
    target = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    per_label, _ = choose_thresholds(binned_counts(torch.logit(probs), target))
    assert [CANDIDATES[i] for i in per_label.tolist()] == pytest.approx([0.5, 0.5])
    # F1 2/3 for t <= 0.43 (both positives and both negatives predicted) and for 0.57 <= t <= 0.9 (one positive),
    # 0.4 in between: 0.43 and 0.57 are as near 0.5, and the lower one wins (it keeps the recall).
    probs = torch.tensor([[0.435, 0.1], [0.565, 0.1], [0.565, 0.1], [0.9, 0.1]])  # (torchmetrics wants two labels)
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    per_label, _ = choose_thresholds(binned_counts(torch.logit(probs), target))
    assert CANDIDATES[int(per_label[0])] == pytest.approx(0.43)


@pytest.mark.parametrize("mode", ["per_label", "global"])
def test_validation_scores_are_taken_at_the_thresholds_chosen(mode: str) -> None:
    logits, target = random_case(4, rows=60, labels=5)
    metrics = MultiLabelDevMetrics(5)
    for part in (slice(0, 23), slice(23, 60)):  # two batches: the counts add up
        metrics.update(logits[part], target[part])
    thresholds = torch.full((5,), 0.5)
    values = metrics.compute(thresholds, mode)
    per_label, overall = brute_force(torch.sigmoid(logits), target)
    chosen = per_label if mode == "per_label" else [overall] * 5
    assert thresholds.tolist() == [CANDIDATES[i] for i in chosen]

    probs = torch.sigmoid(logits)
    scores = [f1(probs[:, c].tolist(), target[:, c].tolist(), float(thresholds[c])) for c in range(5)]
    assert values["val/f1_macro"].item() == pytest.approx(sum(scores) / 5, abs=1e-6)
    decided = probs >= thresholds
    tp = int((decided & (target == 1)).sum())
    fp, fn = int((decided & (target == 0)).sum()), int((~decided & (target == 1)).sum())
    assert values["val/f1_micro"].item() == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert set(values) == {"val/f1_macro", "val/f1_micro", "val/map"}


def test_without_tuning_the_thresholds_stay_and_score_as_they_are() -> None:
    logits, target = random_case(1, rows=40, labels=3)
    metrics = MultiLabelDevMetrics(3)
    metrics.update(logits, target)
    thresholds = torch.tensor([0.2, 0.5, 0.9])
    values = metrics.compute(thresholds, None)  # e.g. the sanity check before training
    assert thresholds.tolist() == pytest.approx([0.2, 0.5, 0.9])
    probs = torch.sigmoid(logits)
    scores = [f1(probs[:, c].tolist(), target[:, c].tolist(), float(thresholds[c])) for c in range(3)]
    assert values["val/f1_macro"].item() == pytest.approx(sum(scores) / 3, abs=1e-6)
    metrics.reset()
    assert not metrics.curve.confmat.any()
