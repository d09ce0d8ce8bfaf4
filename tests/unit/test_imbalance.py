"""`--model.class_weights balanced`: the weights against their formulas, counted once at the start of a fresh fit,
kept in the checkpoint (and typed weights still taken from the config)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textcls.imbalance import balanced_weights
from textcls.initialisers import initialise_from_data
from textcls.models import MLP
from textcls.module import TextClassifier


def test_single_label_weights_are_scikit_learns_balanced() -> None:
    # compute_class_weight("balanced"): n_samples / (n_classes * np.bincount(y))
    counts, rows = np.array([6, 3, 1]), 10
    expected = [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)]
    assert balanced_weights(counts, rows, multi_label=False).tolist() == pytest.approx(expected)


def test_multi_label_weights_are_negatives_over_positives_and_stay_finite() -> None:
    weights = balanced_weights(np.array([5, 1, 0, 20, 10]), 20, multi_label=True)
    assert weights.tolist() == pytest.approx([15 / 5, 19 / 1, 1.0, 1.0, 1.0])  # none or every row: nothing to balance
    assert torch.isfinite(weights).all() and weights.dtype == torch.float32
    assert balanced_weights(np.array([0, 4]), 8, multi_label=False).tolist() == pytest.approx([1.0, 1.0])


class Counts:
    """A DataModule's label_counts (the contract: per-label training rows, and the number of training rows)."""

    def __init__(self, counts: list[int], rows: int) -> None:
        self.counts, self.rows, self.calls = np.array(counts), rows, 0

    def label_counts(self) -> tuple[np.ndarray, int]:
        self.calls += 1
        return self.counts, self.rows


def classifier(multi_label: bool, class_weights, names=("a", "b", "c")) -> TextClassifier:
    network = MLP(vocab_size=10, num_classes=len(names), embedding_dim=4)
    return TextClassifier(network, label_names=list(names), multi_label=multi_label, class_weights=class_weights)


@pytest.mark.parametrize("multi_label", [False, True])
def test_balanced_weights_are_counted_on_a_fresh_fit_and_saved(multi_label: bool, caplog) -> None:
    fresh = classifier(multi_label, "balanced")
    data = Counts([8, 2, 1], 10)
    with caplog.at_level("INFO"):
        initialise_from_data(fresh, data)
    expected = balanced_weights(data.counts, 10, multi_label)
    assert torch.equal(fresh.class_weights, expected) and data.calls == 1
    kind = "positive weights" if multi_label else "class weights"
    assert f"balanced {kind} from the training split: c {expected[2]:.3g}" in caplog.text
    assert torch.equal(fresh.state_dict()["class_weights"], expected)  # persistent: every checkpoint has them

    resumed = classifier(multi_label, "balanced")
    initialise_from_data(resumed, data, resuming=True)
    assert data.calls == 1  # the checkpoint holds them
    checkpoint = {"state_dict": fresh.state_dict()}
    resumed.on_load_checkpoint(checkpoint)
    resumed.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(resumed.class_weights, expected)


def test_typed_weights_come_from_the_config_and_old_checkpoints_still_load() -> None:
    old = classifier(False, None).state_dict()  # saved before the weights were persistent: no class_weights key
    assert "class_weights" not in old
    typed = classifier(False, [1.0, 2.0, 3.0])
    checkpoint = {"state_dict": dict(old)}
    typed.on_load_checkpoint(checkpoint)
    typed.load_state_dict(checkpoint["state_dict"])  # strict
    assert typed.class_weights.tolist() == [1.0, 2.0, 3.0]
    other = classifier(False, [5.0, 5.0, 5.0]).state_dict()
    checkpoint = {"state_dict": dict(other)}
    typed.on_load_checkpoint(checkpoint)  # the command line beats the checkpoint, as for every typed value
    typed.load_state_dict(checkpoint["state_dict"])
    assert typed.class_weights.tolist() == [1.0, 2.0, 3.0]


def test_weights_of_the_wrong_length_or_kind_are_refused() -> None:
    with pytest.raises(ValueError, match=r"has 2 values but there are 3 classes \(a, b, c\); give one weight per"):
        classifier(True, [1.0, 2.0])
    with pytest.raises(ValueError, match="a list of weights or 'balanced'"):
        classifier(False, "inverse")


def test_a_fresh_fit_without_the_counts_is_refused(tmp_path) -> None:
    import pytorch_lightning as pl

    from textcls.errors import UserError

    module = classifier(False, "balanced")
    trainer = pl.Trainer(max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(UserError, match="class_weights balanced"):
        trainer.fit(module, train_dataloaders=[{"input_ids": torch.ones(2, 3, dtype=torch.long)}])
