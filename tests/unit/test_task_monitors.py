"""A config's selection metric is renamed to the task's equivalent: macro-F1 is val/f1 (single-label) and
val/f1_macro (multi-label), and a multi-label run has no accuracy."""

import pytest
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from textcls.checkpointing import use_task_monitors


@pytest.mark.parametrize(
    ("multi_label", "given", "watched"),
    [
        (True, "val/acc", "val/f1_macro"),
        (True, "val/f1", "val/f1_macro"),
        (True, "val/loss", "val/loss"),
        (False, "val/f1_macro", "val/f1"),
        (False, "val/acc", "val/acc"),
    ],
)
def test_selection_and_early_stopping_watch_the_task_s_metric(multi_label, given, watched):
    callbacks = [ModelCheckpoint(monitor=given, mode="max"), EarlyStopping(monitor=given, mode="max")]
    use_task_monitors(callbacks, multi_label)
    assert [c.monitor for c in callbacks] == [watched, watched]


def test_early_stopping_given_twice_on_one_metric_keeps_the_last_and_other_metrics_stay():
    from pytorch_lightning.callbacks import EarlyStopping

    from textcls.checkpointing import drop_repeated_early_stopping

    recipe, preset = EarlyStopping("val/acc", mode="max", patience=3), EarlyStopping("val/acc", mode="max", patience=5)
    on_loss = EarlyStopping("val/loss", patience=2)
    assert drop_repeated_early_stopping([recipe, on_loss, preset]) == [on_loss, preset]
    assert drop_repeated_early_stopping([recipe, on_loss]) == [recipe, on_loss]
