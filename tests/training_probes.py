"""Test-only callbacks that `textcls` subprocesses load through PYTHONPATH=tests: real faults, recorded evaluation rows.

`--trainer.callbacks+=training_probes.KillAt --trainer.callbacks.phase train --trainer.callbacks.step 18`
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class KillAt(Callback):
    """SIGKILL this process (no cleanup, no checkpoint) at a point of the run.

    Args:
        phase: "train" after optimizer step `step`; "epoch_start" at the start of epoch `epoch`; "validation" after
            the first validation batch of epoch `epoch`.
        step: global step for phase "train".
        epoch: epoch for the other phases.
    """

    def __init__(self, phase: str, step: int = 0, epoch: int = 0) -> None:
        self.phase, self.step, self.epoch = phase, step, epoch

    @staticmethod
    def _kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.phase == "train" and trainer.global_step == self.step:
            self._kill()

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.phase == "epoch_start" and trainer.current_epoch == self.epoch:
            self._kill()

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.phase == "validation" and not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            self._kill()


class SignalAt(Callback):
    """Send a signal (SIGTERM / SIGINT) to this process after optimizer step `step`, as a scheduler or Ctrl-C would.

    Args:
        step: global step after which the signal is sent.
        signal_name: "SIGTERM" or "SIGINT".
    """

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step, self.signal_name = step, signal_name

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), getattr(signal, self.signal_name))


class RecordEvalRows(Callback):
    """Write the row indices each rank evaluated to `<out_dir>/<stage>-e<epoch>-r<rank>.json`.

    Args:
        out_dir: directory for the JSON files.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.rows: list[int] = []

    def _add(self, batch: dict[str, torch.Tensor]) -> None:
        self.rows.extend(batch["index"].tolist())

    def on_validation_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._add(batch)

    def on_test_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        self._add(batch)

    def _dump(self, trainer: pl.Trainer, stage: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        name = f"{stage}-e{trainer.current_epoch}-r{trainer.global_rank}.json"
        (self.out_dir / name).write_text(json.dumps(self.rows))
        self.rows = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.sanity_checking:
            self.rows = []
            return
        self._dump(trainer, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._dump(trainer, "test")


class PoisonStep(Callback):
    """Make the network's output NaN for one batch, at optimizer step `step` (a stand-in for a diverging batch).

    Args:
        step: the global step whose forward pass returns NaN logits.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_fit_start(self, trainer: pl.Trainer, module: Any) -> None:
        done = []

        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if module.training and trainer.global_step == self.step and not done:
                done.append(True)  # one bad batch, even if the skipped update leaves the step count where it was
                return output * float("nan")
            return output

        module.model.register_forward_hook(hook)


class TraceSteps(Callback):
    """Append one JSON line per training batch (step, first rows, loss, RNG digest after the step) to `path`.

    Args:
        path: the JSON Lines file.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        record = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "batch_idx": batch_idx,
            "rows": batch["index"][:4].tolist(),
            "loss": float(loss) if loss is not None else None,
            "rng": int(torch.get_rng_state().double().sum()),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        }
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


class RecordWeights(Callback):
    """Keep (in memory, for in-process tests) the module's weights after each training step (`train[step]`) and at
    the first batch of each validation / test run (`validation`, `test`: lists), when every `*_start` hook has run."""

    def __init__(self) -> None:
        self.train: dict[int, dict[str, torch.Tensor]] = {}
        self.validation: list[dict[str, torch.Tensor]] = []
        self.test: list[dict[str, torch.Tensor]] = []

    @staticmethod
    def _weights(module: Any) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in module.named_parameters()}

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        self.train[trainer.global_step] = self._weights(module)

    def on_validation_batch_start(
        self, trainer: pl.Trainer, module: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.validation.append(self._weights(module))

    def on_test_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, batch_idx: int, *args: Any) -> None:
        if batch_idx == 0:
            self.test.append(self._weights(module))
