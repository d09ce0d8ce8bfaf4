"""Validation at a fit's last step when no validation is due there.

A run that `--trainer.max_steps` ends between validations (dev every N steps, or mid-epoch on a large file) would end
without its final weights ever scored, and without a best checkpoint at all when it is shorter than one interval.
Lightning validates a batch early when `trainer.should_stop` is set, so the last step sets it.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class ValidateAtLastStep(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step and trainer.val_dataloaders is not None:
            trainer.should_stop = True
