"""Crash-proof training: atomic checkpoint files, the random state that resume needs, a checkpoint on SIGTERM/Ctrl-C,
and finding the newest `last.ckpt` of an experiment."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shlex
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rich.console import Console

from textcls.errors import environment_error, user_error

_err_console = Console(stderr=True, highlight=False)


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


class TrainingRNG(Callback):
    """Keep the random stream of the training steps (dropout) continuous across checkpoint and resume.

    The state after each training batch is kept and put back before the next one, so whatever else draws random
    numbers in between (a DataLoader drawing its base seed when an iterator is created, validation, a sanity check
    that a resumed run skips) cannot shift the training stream. The checkpoint holds that state for torch (CPU and
    CUDA), numpy and Python's `random` as plain tensors and lists, so it still loads with `weights_only=True`.
    """

    def __init__(self) -> None:
        self._next: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self._next is not None:
            torch.set_rng_state(self._next["torch"])
            if self._next["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._next["cuda"])

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        # is_initialized implies is_available and is only a flag read; is_available costs more, at every batch.
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        self._next = {"torch": torch.get_rng_state(), "cuda": cuda}

    def state_dict(self) -> dict[str, Any]:
        if self._next is None:
            self.on_train_batch_end(None, None, None, None, 0)  # type: ignore[arg-type]
        assert self._next is not None
        kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
        version, internal, python_gauss = random.getstate()
        return {
            "torch": self._next["torch"],
            "cuda": list(self._next["cuda"]),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "python": {"version": version, "state": list(internal), "gauss": python_gauss},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._next = {"torch": state_dict["torch"], "cuda": list(state_dict.get("cuda", []))}
        np_state = state_dict["numpy"]
        np.random.set_state(
            (
                np_state["kind"],
                np_state["keys"].numpy().astype(np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["gauss"],
            )
        )
        py_state = state_dict["python"]
        random.setstate((py_state["version"], tuple(py_state["state"]), py_state["gauss"]))


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
        if last_every_n_train_steps < 0:
            raise ValueError(f"--checkpoint.last_every_n_train_steps must be 0 or more, got {last_every_n_train_steps}")
        self.last_every_n_train_steps = last_every_n_train_steps
        self.top_k_training_state = top_k_training_state

    @property
    def state_key(self) -> str:
        # Lightning formats this key for every callback on every hook call (a repr of the settings each time); the
        # settings do not change after __init__, so it is built once.
        if getattr(self, "_state_key", None) is None:
            self._state_key = super().state_key
        return self._state_key

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        # Every file this callback writes passes here; `last_model_path` is set to the target before `last` is saved.
        full = filepath == self.last_model_path or self.save_last is not True or self.top_k_training_state
        if full or self.save_weights_only:
            return super()._save_checkpoint(trainer, filepath)
        self.save_weights_only = True  # Lightning's own switch, read by the save below
        try:
            return super()._save_checkpoint(trainer, filepath)
        finally:
            self.save_weights_only = False

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
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        # Lightning's per-batch save point does nothing (and has no side effect) without a step or time interval
        # under automatic optimization; checking that first spares its trainer-state checks at every batch.
        idle = self._every_n_train_steps < 1 and self._train_time_interval is None
        if not idle or not pl_module.automatic_optimization:
            super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        n = self.last_every_n_train_steps
        # The last batch of an epoch is left to the save after validation: a checkpoint taken between the last batch
        # and validation would make Lightning skip that validation on resume.
        if (
            n > 0
            and trainer.global_step % n == 0
            and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)


class ResumeDataPosition(Callback):
    """Restart the training data of a run resumed mid-epoch at the batch after the checkpoint.

    Lightning hands the checkpoint's dataloader state to a stateful loader (`textcls.data.resumable`) only while it
    first sets up the training data; the warmup-cosine schedule's `trainer.estimated_stepping_batches` does that
    setup early, before the checkpoint's loop state is read, so the state would be dropped. This applies it once the
    state is known (at train start, before the first batch is drawn) and starts the epoch's iterator again.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        if fit_loop.restarting and fit_loop._combined_loader_states_to_load and fit_loop._data_fetcher is not None:
            fit_loop._load_combined_loader_states()
            iter(fit_loop._data_fetcher)


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

    Through the ModelCheckpoint when there is one, so it knows the file as its own `last` (otherwise its next save
    would see a foreign last.ckpt and write last-v1.ckpt beside it).
    """
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.save_last:
        checkpoint._save_last_checkpoint(trainer, checkpoint._monitor_candidates(trainer))
        return Path(checkpoint.last_model_path)
    directory = getattr(checkpoint, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
    path = Path(directory) / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


class TrainingInterrupted(SystemExit):
    """Raised out of `fit` after SIGTERM or Ctrl-C, once a checkpoint is saved; the exit status is 128 + signal."""


class GracefulInterrupt(Callback):
    """On SIGTERM or the first Ctrl-C: finish the current batch, save `last.ckpt`, say how to resume, exit non-zero.

    Ctrl-C is turned into the same flag Lightning sets for SIGTERM, so under DDP rank 0's flag reaches every rank
    (Lightning broadcasts it each step) and all ranks stop at the same batch and save together. A second Ctrl-C
    aborts at once, without a checkpoint.
    """

    def __init__(self) -> None:
        self._signal: int | None = None
        self._previous: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._signal = None
        with contextlib.suppress(ValueError):  # only the main thread may install handlers
            self._previous = signal.signal(signal.SIGINT, self._make_handler(trainer))

    def _make_handler(self, trainer: pl.Trainer) -> Any:
        def handler(signum: int, frame: Any) -> None:
            if self._signal is not None:
                raise KeyboardInterrupt
            self._signal = signum
            trainer._signal_connector.received_sigterm = True
            rank_zero_info("\nCtrl-C: stopping after this batch and saving a checkpoint (Ctrl-C again to abort).")

        return handler

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handler()
        if not isinstance(exception, SIGTERMException) or trainer.sanity_checking:
            return
        signum = self._signal or signal.SIGTERM
        path = save_last(trainer)  # collective under DDP: every rank got the same flag at the same batch
        if trainer.is_global_zero:
            name = signal.Signals(signum).name
            command = resume_hint(sys.argv, path)
            _err_console.print(
                f"{name}: stopped at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"checkpoint saved to {path}\nResume with: {command}",
                soft_wrap=True,
                markup=False,
            )
        raise TrainingInterrupted(128 + int(signum))


def resume_hint(argv: list[str], path: Path) -> str:
    """The resume command as one line for a shell: it changes to this directory first (the command's relative paths
    are relative to it) and names the program by its absolute path, so it runs in a fresh shell without PATH set up."""
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join(_resume_command(argv, path))}"


def _resume_command(argv: list[str], path: Path) -> list[str]:
    """The command line that was run, with `--ckpt_path` pointing at the saved checkpoint."""
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--ckpt_path" and i + 1 < len(args):
            del args[i : i + 2]
            break
        if arg.startswith("--ckpt_path="):
            del args[i]
            break
    return [*_program(argv[0] if argv else ""), *args, "--ckpt_path", str(path)]


def _program(argv0: str) -> list[str]:
    """How this process was started: `python -m textcls` (then argv[0] is textcls/__main__.py), or a script."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name in ("textcls", "textcls.__main__"):
        return [sys.executable, "-m", "textcls"]
    if not argv0:
        return ["textcls"]
    if os.sep not in argv0:  # found on PATH by the shell that started it
        argv0 = shutil.which(argv0) or argv0
    return [os.path.abspath(argv0)]


def newest_last_checkpoint(runs_root: Path, experiment: str) -> Path | None:
    """The most recently written complete `last.ckpt` under runs/<experiment>/<run>/checkpoints/, if any."""
    return next(complete_last_checkpoints(runs_root, experiment), None)


def complete_last_checkpoints(runs_root: Path, experiment: str) -> Iterator[Path]:
    """The complete `last.ckpt` files under runs/<experiment>/<run>/checkpoints/, newest first.

    A checkpoint is complete when torch can read it (`weights_only=True`); a partly written one from a crash is
    skipped with a message. DeepSpeed writes `last.ckpt` as a directory; it counts as complete once DeepSpeed's
    `latest` file names a tag folder that holds the model states (written last).
    """
    candidates = sorted(
        (runs_root / experiment).glob("*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in candidates:
        if path.is_dir():
            if _complete_deepspeed_checkpoint(path):
                yield path
            else:
                rank_zero_info(f"skipping incomplete DeepSpeed checkpoint directory {path}")
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for a truncated file
            rank_zero_info(f"skipping unreadable checkpoint {path} ({type(err).__name__})")
            continue
        yield path


def _complete_deepspeed_checkpoint(path: Path) -> bool:
    latest = path / "latest"
    if not latest.is_file():
        return False
    tag = latest.read_text(encoding="utf-8").strip()
    return bool(tag) and any((path / tag).glob("*model_states.pt"))


class FaultTolerance(TrainingRNG, ResumeDataPosition, GracefulInterrupt):
    """TrainingRNG, ResumeDataPosition and GracefulInterrupt as one callback: Lightning calls every hook of every
    callback on every step, so each callback costs per step whether it does anything there or not."""

    def __init__(self) -> None:
        TrainingRNG.__init__(self)
        GracefulInterrupt.__init__(self)
