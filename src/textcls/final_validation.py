"""Validation at a fit's last step when the fit has no best checkpoint yet.

A run that `--trainer.max_steps` ends before its first validation (dev every N steps and a shorter run, or a stop
mid-epoch on a large file) would end with no best checkpoint, so nothing to test or resume from. Lightning validates
a batch early when `trainer.should_stop` is set, so the last step sets it. A run that has validated is left alone:
an extra validation would move Schedule-Free's weights (eval/train switch) and break bit-identical resume.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from textcls.schedule_free import ScheduleFreeModes


class ValidateAtLastStep(pl.Callback):
    """Validates the last step of a fit that max_steps ends before any validation (see the module)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not 0 < trainer.max_steps <= trainer.global_step:  # every batch but the last: nothing more to look at
            return
        if getattr(trainer.checkpoint_callback, "best_model_path", None) != "":  # validated already, or no checkpoints
            return
        if any(isinstance(c, ScheduleFreeModes) for c in trainer.callbacks):  # type: ignore[attr-defined]
            return  # its eval/train switch moves the weights: an extra validation would break bit-identical resume
        trainer.should_stop = True
