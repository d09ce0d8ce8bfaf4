"""`textcls.training`: the class paths that configs, saved `config.yaml` files and checkpoints name
(`textcls.training.AtomicCheckpointIO`, `...FaultTolerance`, ...) keep importing from here; the code lives in
checkpointing.py, fault_tolerance.py and resume.py. Plus the per-step speed tricks."""

from __future__ import annotations

import contextlib
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar
from pytorch_lightning.profilers import PassThroughProfiler

from textcls.checkpointing import (  # noqa: F401  (re-exported: saved configs name these paths)
    TRAINING_STATE_KEYS,
    AtomicCheckpointIO,
    ResumeCheckpoint,
    require_training_state,
    save_last,
)
from textcls.fault_tolerance import (  # noqa: F401  (re-exported: saved configs name these paths)
    FaultTolerance,
    GracefulInterrupt,
    ResumeDataPosition,
    TrainingInterrupted,
    TrainingRNG,
)
from textcls.resume import (  # noqa: F401  (re-exported for run_config and the tests)
    _resume_command,
    complete_last_checkpoints,
    newest_last_checkpoint,
    resume_hint,
)


class QuietProfiler(PassThroughProfiler):
    """The Trainer's default no-op profiler, without its cost: Lightning wraps every hook of every callback in
    `profiler.profile(...)`, and the default's generator-based context manager costs a few microseconds each time,
    hundreds of times per step. One reusable null context instead."""

    _null = contextlib.nullcontext()

    def profile(self, action_name: str) -> Any:
        return self._null


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, redrawn every `refresh_rate` training batches.

    Lightning's own reads every progress-bar metric (`.item()`, a device sync on GPU) and redraws after every batch,
    whatever its refresh_rate; on a small model that is a measurable share of the step.

    Args:
        refresh_rate: batches between redraws.
    """

    def __init__(self, refresh_rate: int = 10, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % max(self.refresh_rate, 1) == 0 or batch_idx + 1 >= self.total_train_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def use_throttled_progress_bar(trainer: pl.Trainer) -> None:
    """Swap the default progress bar the Trainer made for itself (a user's own choice is left alone)."""
    callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]
    for i, callback in enumerate(callbacks):
        if type(callback) is RichProgressBar:
            callbacks[i] = ThrottledRichProgressBar()


# The hooks Lightning calls on every callback at every batch (and, in training, several times per batch).
BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    *(f"on_{stage}_batch_{end}" for stage in ("validation", "test", "predict") for end in ("start", "end")),
)


def skip_idle_batch_hooks(callbacks: list[Callback]) -> None:
    """Let Lightning skip the per-batch hooks a callback does not implement.

    Lightning calls every per-batch hook of every callback, each inside a profiler context and with its name formatted,
    about 2 us a call on a CPU: with `textcls fit`'s ten callbacks, of which four do anything per training batch, that
    is 55 idle calls per step (0.1 ms, 4 % of the MLP's step here). Lightning (2.6, pinned) skips a hook that is not
    callable, so the base class's no-op hooks are shadowed with None on the instance. A hook the callback's class
    overrides, or that is set on the instance, is kept.
    """
    for callback in callbacks:
        own = getattr(callback, "__dict__", None)
        if own is None:  # no instance dictionary (__slots__): left as it is
            continue
        for name in BATCH_HOOKS:
            if name not in own and getattr(type(callback), name, None) is getattr(Callback, name):
                setattr(callback, name, None)
