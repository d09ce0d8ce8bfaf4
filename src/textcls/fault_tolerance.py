"""Fault tolerance callbacks: the random state resume needs, the mid-epoch data position, and a checkpoint on
SIGTERM/Ctrl-C."""

from __future__ import annotations

import contextlib
import random
import signal
import sys
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.combined_loader import CombinedLoader
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rich.console import Console

from textcls.checkpointing import save_last
from textcls.compat import loader_states, request_sigterm_stop
from textcls.resume import resume_hint

_err_console = Console(stderr=True, highlight=False)


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


class ResumeDataPosition(Callback):
    """Restart the training data of a run resumed mid-epoch at the batch after the checkpoint.

    Lightning hands the checkpoint's dataloader state to a stateful loader (`textcls.data.resumable`) only while it
    first sets up the training data; the warmup-cosine schedule's `trainer.estimated_stepping_batches` does that
    setup early, before the checkpoint's loop state is read, so the state would be dropped. This keeps the state from
    the checkpoint and applies it at train start, before the first batch is drawn (the loader starts lazily).
    """

    def __init__(self) -> None:
        self._loader_states: list[dict[str, Any]] = []

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._loader_states = loader_states(checkpoint)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        states, self._loader_states = self._loader_states, []
        if not (states and trainer.fit_loop.restarting and trainer.train_dataloader is not None):
            return
        loaders = [
            loader
            for loader in CombinedLoader(trainer.train_dataloader).flattened
            if callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None))
        ]
        if len(loaders) == len(states):  # else Lightning's own check has already refused the checkpoint
            for loader, state in zip(loaders, states, strict=True):
                loader.load_state_dict(state)


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
            request_sigterm_stop(trainer)
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


class FaultTolerance(TrainingRNG, ResumeDataPosition, GracefulInterrupt):
    """TrainingRNG, ResumeDataPosition and GracefulInterrupt as one callback: Lightning calls every hook of every
    callback on every step, so each callback costs per step whether it does anything there or not."""

    def __init__(self) -> None:
        TrainingRNG.__init__(self)
        GracefulInterrupt.__init__(self)
        ResumeDataPosition.__init__(self)
