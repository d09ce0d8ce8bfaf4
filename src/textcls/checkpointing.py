"""Checkpoint writing: atomic files, a `last.ckpt` that is always the latest state, and the refusal to resume a fit
from a weights-only file."""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import shutil
from pathlib import Path
from typing import Any
from weakref import proxy

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info

from textcls.compat import saves_on_train_epoch_end
from textcls.errors import environment_error, user_error


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same directory, fsync it, then rename it over the target.

    A crash (or SIGKILL) while writing leaves the previous checkpoint under its name and, at worst, a stray
    `.<name>.<pid>.tmp` file; never a truncated `last.ckpt` that a resume would load and fail on. Lightning's own
    writer stages the file in the system temp directory and moves it, which is a copy (not atomic) across filesystems.
    A write that fails (full disk, read-only, permission denied) is one UserError naming the file, and the temporary
    file is removed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # object stores: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as err:
            raise environment_error(err, "write the checkpoint", target, _CHECKPOINT_TODO) from None
        except RuntimeError as err:
            # torch's zip writer reports a failed write as "[enforce fail at inline_container.cc] ... unexpected
            # pos", without the errno; a full disk is by far the likeliest cause, so the free space is checked.
            if "inline_container" not in str(err) and "write failed" not in str(err):
                raise
            free = _free_bytes(target.parent)
            code = errno.ENOSPC if free is not None and free < 1 << 20 else errno.EIO
            failed = OSError(code, "write failed")
            raise environment_error(failed, "write the checkpoint", target, _CHECKPOINT_TODO) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return None


_CHECKPOINT_TODO = "free space there or pass --runs_root a writable disk with room (earlier checkpoints are intact)"


def _free_bytes(directory: Path) -> int | None:
    with contextlib.suppress(OSError):
        return shutil.disk_usage(directory).free
    return None


class ResumeCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (best by a metric, `last`), with a `last.ckpt` that is always the latest state.

    Lightning 2.6 rewrites `last.ckpt` only when a top-k checkpoint was written at the same step, so after an epoch
    that did not improve the monitored metric `last` lags behind and a resume would repeat work. Here `last` is
    written at every epoch-end save point, and optionally every N steps inside an epoch.

    With a separate `last.ckpt` (`save_last: true`), the top-k files (`best.ckpt`) hold what evaluation, prediction
    and export need (weights, hyper-parameters, the DataModule state) and not the optimizer, scheduler and callback
    state, which only resuming needs and which `last.ckpt` has: the optimizer state is written once.

    Args:
        last_every_n_train_steps: also write `last.ckpt` every N optimizer steps inside an epoch (0: only at epoch
            ends), so a crash loses at most N steps; the resumed run continues the epoch with the next batch.
        top_k_training_state: also write the optimizer, scheduler and callback state into `best.ckpt` (and the other
            top-k files), so that a fit can resume from them too; by default only `last.ckpt` has it.
    """

    def __init__(
        self, *args: Any, last_every_n_train_steps: int = 0, top_k_training_state: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        given = inspect.signature(ModelCheckpoint.__init__).bind(self, *args, **kwargs)
        given.apply_defaults()
        # `save_last: true` is written here through public calls; Lightning's own (lagging) `last` stays off.
        self.writes_last = self.save_last is True
        self.last_weights_only = self.save_weights_only
        self.last_version_counter = bool(given.arguments["enable_version_counter"])
        if self.writes_last:
            self.save_last = False
            self.save_weights_only = self.last_weights_only or not top_k_training_state
        if last_every_n_train_steps < 0:
            raise ValueError(f"--checkpoint.last_every_n_train_steps must be 0 or more, got {last_every_n_train_steps}")
        self.last_every_n_train_steps = last_every_n_train_steps
        self.top_k_training_state = top_k_training_state
        # Lightning's per-batch save point does nothing without a step or time interval (automatic optimization).
        self._idle_batches = (
            not given.arguments["every_n_train_steps"] and given.arguments["train_time_interval"] is None
        )
        self._last_written_step = 0  # like Lightning: nothing to save before the first step
        self._wrote_last = False

    @property
    def state_key(self) -> str:
        # Lightning formats this key for every callback on every hook call (a repr of the settings each time); the
        # settings do not change after __init__, so it is built once.
        if getattr(self, "_state_key", None) is None:
            self._state_key = super().state_key
        return self._state_key

    def write_last(self, trainer: pl.Trainer) -> Path:
        """Write `last.ckpt` (with the training state) now, on every rank (saving is collective under DDP)."""
        names = {"epoch": torch.tensor(trainer.current_epoch), "step": torch.tensor(trainer.global_step)}
        filepath = self.format_checkpoint_name(names, self.CHECKPOINT_NAME_LAST)
        version = self.STARTING_VERSION
        while self.last_version_counter and filepath != self.last_model_path and self.file_exists(filepath, trainer):
            filepath = self.format_checkpoint_name(names, self.CHECKPOINT_NAME_LAST, ver=version)
            version += 1
        self.last_model_path = filepath  # before the save: it is part of the saved state
        trainer.save_checkpoint(filepath, self.last_weights_only)
        self._last_written_step, self._wrote_last = trainer.global_step, True
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
        return Path(filepath)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning has read the checkpoint's weights and before it restores the optimizer from it.
        super().on_fit_start(trainer, pl_module)
        path = trainer.ckpt_path
        if path and Path(path).is_file():
            require_training_state(torch.load(path, map_location="cpu", weights_only=True, mmap=True), path)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) != self.dirpath:
            # Every run writes into a directory of its own, so a checkpoint always comes from another one, whose
            # scores and file list this run neither replaces nor deletes. Lightning drops them too, with a warning
            # at every test/validate/predict; like Lightning, only best_model_path is taken.
            self.best_model_path = state_dict["best_model_path"]
            return
        super().load_state_dict(state_dict)

    def _refresh_last(self, trainer: pl.Trainer) -> None:
        skip = (
            bool(getattr(trainer, "fast_dev_run", False))
            or trainer.state.fn != TrainerFn.FITTING
            or trainer.sanity_checking
        )
        if self.writes_last and not skip and self._last_written_step != trainer.global_step:
            self.write_last(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        if not self._idle_batches or not pl_module.automatic_optimization:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        n = self.last_every_n_train_steps
        # The last batch of an epoch is left to the save after validation: a checkpoint taken between the last batch
        # and validation would make Lightning skip that validation on resume.
        if n > 0 and trainer.global_step % n == 0 and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not saves_on_train_epoch_end(self, trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if saves_on_train_epoch_end(self, trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.writes_last and not self._wrote_last:  # as Lightning's save_last: a fit that saved nothing yet
            self.write_last(trainer)


TRAINING_STATE_KEYS = ("optimizer_states", "lr_schedulers")


def require_training_state(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume a fit from a checkpoint without the optimizer state (`best.ckpt`: weights only), in one line
    that says which file to resume from, instead of Lightning's KeyError at the first optimizer restore."""
    if all(key in checkpoint for key in TRAINING_STATE_KEYS):
        return
    last = Path(path).with_name("last.ckpt")
    hint = f"--ckpt_path {last}" if last.is_file() and last != Path(path) else "--ckpt_path last"
    raise user_error(
        f"{Path(path).name} has the weights for test, predict and export, not the optimizer state a fit resumes from",
        f"--ckpt_path {path}",
        f"resume from the run's last.ckpt, which has it: {hint}",
    )


def save_last(trainer: pl.Trainer) -> Path:
    """Write `last.ckpt` now (on every rank: saving is collective under DDP) and return its path.

    Through the ResumeCheckpoint when there is one, so it knows the file as its own `last` (otherwise its next save
    would see a foreign last.ckpt and write last-v1.ckpt beside it).
    """
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ResumeCheckpoint) and checkpoint.writes_last:
        return checkpoint.write_last(trainer)
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.last_model_path:
        path = Path(checkpoint.last_model_path)
    else:
        directory = getattr(checkpoint, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
        path = Path(directory) / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


#: The same selection metric under each task's name: macro-F1 is `val/f1` in single-label runs and `val/f1_macro` in
#: multi-label ones, and a multi-label run logs no accuracy (its default selection is macro-F1).
TASK_MONITORS = {False: {"val/f1_macro": "val/f1"}, True: {"val/acc": "val/f1_macro", "val/f1": "val/f1_macro"}}


def use_task_monitors(callbacks: list[Any], multi_label: bool) -> None:
    """Checkpoint selection and early stopping that watch a metric the other task logs watch this task's equivalent,
    so a config stacks on either kind of data (`configs/benchmarks/multilabel.yaml`, `early_stopping.yaml`)."""
    renames = TASK_MONITORS[multi_label]
    for callback in callbacks:
        if isinstance(callback, (ModelCheckpoint, EarlyStopping)) and callback.monitor in renames:
            old, callback.monitor = callback.monitor, renames[callback.monitor]
            task = "multi-label" if multi_label else "single-label"
            rank_zero_info(f"{type(callback).__name__} monitors {callback.monitor} ({task} data: no {old})")


def drop_repeated_early_stopping(callbacks: list[Any]) -> list[Any]:
    """Two stacked configs that both stop early on one metric (a recipe's own and `early_stopping.yaml`) would make
    Lightning refuse the run (one saved state per metric); the later one is kept, as a later config wins."""
    last = {c.state_key: i for i, c in enumerate(callbacks) if isinstance(c, EarlyStopping)}
    kept = [c for i, c in enumerate(callbacks) if not isinstance(c, EarlyStopping) or last[c.state_key] == i]
    if len(kept) < len(callbacks):
        kept_stops = ", ".join(f"{c.monitor} (patience {c.patience})" for c in kept if isinstance(c, EarlyStopping))
        rank_zero_info(f"EarlyStopping was configured more than once on one metric; the last is used: {kept_stops}")
    return kept
