"""textcls.speed: each switch does what it says, and none changes what a user's callback sees."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.profilers import PassThroughProfiler, SimpleProfiler
from pytorch_lightning.trainer import call

from textcls.callbacks import EpochSummary
from textcls.speed import QuietProfiler, Speedups, ThrottledRichProgressBar


class CallsItsOwnHook(pl.Callback):
    """A user's callback that calls an inherited no-op hook itself."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.on_before_zero_grad(trainer, pl_module, None)
        self.seen = batch_idx


def _trainer(*callbacks, **kwargs):
    return pl.Trainer(callbacks=list(callbacks), logger=False, enable_checkpointing=False, **kwargs)


def test_switches_swap_the_default_profiler_and_progress_bar_only():
    on = Speedups(quiet_profiler=True, throttle_progress_bar=True)
    trainer = _trainer()
    assert type(trainer.profiler) is PassThroughProfiler
    on.apply(trainer)
    assert isinstance(trainer.profiler, QuietProfiler)
    assert [type(c) for c in trainer.callbacks if isinstance(c, RichProgressBar)] == [ThrottledRichProgressBar]

    mine = RichProgressBar(refresh_rate=1)
    trainer = _trainer(mine, profiler=SimpleProfiler())
    on.apply(trainer, keep=[mine])
    assert isinstance(trainer.profiler, SimpleProfiler) and trainer.progress_bar_callback is mine


def test_by_default_every_speedup_is_on_and_all_off_leaves_the_trainer_as_lightning_made_it():
    trainer = _trainer()
    Speedups().apply(trainer)
    assert type(trainer.profiler) is QuietProfiler and type(trainer.progress_bar_callback) is ThrottledRichProgressBar
    trainer = _trainer()
    Speedups(quiet_profiler=False, throttle_progress_bar=False, skip_idle_hooks=False).apply(trainer)
    assert type(trainer.profiler) is PassThroughProfiler and type(trainer.progress_bar_callback) is RichProgressBar


def test_skip_idle_hooks_leaves_a_users_callback_callable():
    mine, ours = CallsItsOwnHook(), EpochSummary()
    trainer = _trainer(mine, ours, enable_progress_bar=False)
    Speedups(skip_idle_hooks=True).apply(trainer)
    assert callable(mine.on_before_zero_grad) and callable(mine.on_train_batch_start)
    assert ours.on_train_batch_end is None and callable(ours.on_validation_end)
    call._call_callback_hooks(trainer, "on_train_batch_end", None, {"x": torch.zeros(1)}, 3)
    assert mine.seen == 3
