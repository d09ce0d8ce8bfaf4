"""`--model.class_weights balanced`: inverse-frequency loss weights counted from the training split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def balanced_weights(counts: np.ndarray | Sequence[int], rows: int, multi_label: bool) -> torch.Tensor:
    """Single-label: scikit-learn's class_weight="balanced", rows / (classes * rows of the class). Multi-label: each
    label's positive weight negatives / positives (the ratio of scikit-learn's balanced weights of the label's two
    classes, as BCE's pos_weight wants it). A class without a training row, or a label on none or on every row, gets
    weight 1: there is nothing to balance."""
    count = torch.as_tensor(np.asarray(counts, dtype=np.float64))
    if multi_label:
        weights = torch.where((count > 0) & (count < rows), (rows - count) / count.clamp(min=1), 1.0)
    else:
        weights = torch.where(count > 0, rows / (len(count) * count.clamp(min=1)), 1.0)
    return weights.float()


def describe(weights: torch.Tensor, names: Sequence[str], multi_label: bool, shown: int = 10) -> str:
    """One line for the log: the weights by label name, the largest first when there are many."""
    kind = "positive weights" if multi_label else "class weights"
    pairs = sorted(zip(names, weights.tolist(), strict=True), key=lambda pair: -pair[1])
    text = ", ".join(f"{name} {value:.3g}" for name, value in pairs[:shown])
    more = f" (the {shown} largest of {len(pairs)})" if len(pairs) > shown else ""
    return f"balanced {kind} from the training split{more}: {text}"
