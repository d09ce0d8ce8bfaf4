"""A callback for the optimizer study: seconds spent in training batches, logged next to every `val/acc`.

Lives next to studies/compare_optimizers.py, which puts this folder on PYTHONPATH of the `textcls fit` processes it
starts and adds the callback with `--trainer.callbacks+=study_clock.TrainClock`.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class TrainClock(Callback):
    """Log `time/train_seconds`: wall-clock seconds inside training batches (forward, backward, optimizer step) so far.

    Validation, checkpointing and start-up are left out, so "seconds to reach a dev accuracy" compares the optimizers'
    training work and not the evaluation schedule around it.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start: float | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            pl_module.log("time/train_seconds", self.seconds)
