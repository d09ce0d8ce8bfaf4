"""Per-step speed-ups of `textcls fit`, each one switch of `Speedups` (`--speedups.*`), measured by
`benchmarks/overhead.py --speedups`. None of them changes what a callback sees."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar
from pytorch_lightning.profilers import PassThroughProfiler


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

# Only callbacks of these packages lose their idle hooks: a user's own callback keeps every hook callable.
_OWN_PACKAGES = ("textcls.", "pytorch_lightning.")


def skip_idle_batch_hooks(callbacks: list[Callback]) -> None:
    """Let Lightning skip the per-batch hooks that textcls's and Lightning's own callbacks do not implement.

    Lightning (2.6, pinned) calls a callback's hook only if it is callable, so the base class's no-op hooks are
    shadowed with None on the instance. A hook the callback's class overrides, or that is set on the instance, is kept,
    and callbacks of other packages (a user's) are left alone.
    """
    for callback in callbacks:
        own = getattr(callback, "__dict__", None)
        if own is None or not type(callback).__module__.startswith(_OWN_PACKAGES):
            continue
        for name in BATCH_HOOKS:
            if name not in own and getattr(type(callback), name, None) is getattr(Callback, name):
                setattr(callback, name, None)


class Speedups:
    """Per-step speed-ups of the Trainer that textcls builds, each switched alone (`benchmarks/overhead.py
    --speedups` measures each; none changes what a callback of yours sees). All on by default: the step loss is
    logged when the bar redraws (textcls.metrics.loss_is_read), and the other two save Lightning's per-hook work.

    Args:
        quiet_profiler: when no profiler is configured (`--trainer.profiler` unset), use QuietProfiler, a no-op
            profiler without the per-hook context manager of Lightning's default.
        throttle_progress_bar: replace the default rich progress bar by ThrottledRichProgressBar (redrawn every 10
            batches); a progress bar of your own in `trainer.callbacks` is left alone.
        skip_idle_hooks: let Lightning skip the per-batch hooks that textcls's and Lightning's own callbacks leave
            unimplemented (set to None on those instances; your callbacks are untouched).
    """

    def __init__(
        self, quiet_profiler: bool = True, throttle_progress_bar: bool = True, skip_idle_hooks: bool = True
    ) -> None:
        self.quiet_profiler = quiet_profiler
        self.throttle_progress_bar = throttle_progress_bar
        self.skip_idle_hooks = skip_idle_hooks

    def apply(self, trainer: pl.Trainer, keep: Sequence[Any] = ()) -> None:
        """Called once on a new Trainer, before it runs; `keep`: the configured callbacks, never replaced."""
        if self.quiet_profiler and type(trainer.profiler) is PassThroughProfiler:  # type: ignore[attr-defined]
            trainer.profiler = QuietProfiler()  # type: ignore[attr-defined]
        callbacks: list[Callback] = trainer.callbacks  # type: ignore[attr-defined]
        if self.throttle_progress_bar:
            for i, callback in enumerate(callbacks):
                if type(callback) is RichProgressBar and not any(callback is k for k in keep):  # the Trainer's own
                    callbacks[i] = ThrottledRichProgressBar()
        if self.skip_idle_hooks:
            skip_idle_batch_hooks(callbacks)
