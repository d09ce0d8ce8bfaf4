"""What a NaN or infinite training loss does: stop the run naming the step and the batch, or skip that batch."""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch

NonFinitePolicy = Literal["stop", "skip"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the batch."""


def check_policy(policy: str) -> None:
    if policy not in ("stop", "skip"):
        raise ValueError(f"--model.nonfinite_loss must be 'stop' or 'skip', got {policy!r}.")


def skip_nonfinite(
    module: pl.LightningModule, loss: torch.Tensor, batch: dict[str, Any], batch_idx: int, policy: NonFinitePolicy
) -> bool:
    """Whether to skip this batch's update; raises NonFiniteLossError under "stop". All DDP ranks decide alike."""
    trainer = module.trainer
    # One host read per step (a device sync on GPU): the price of never applying a NaN update.
    if trainer.world_size > 1:
        bad = (~torch.isfinite(loss.detach())).float()
        if not bool(trainer.strategy.reduce(bad, reduce_op="max") > 0):
            return False
    elif math.isfinite(loss.item()):  # no tensor op: a plain float read is all one process needs
        return False
    if policy == "skip":
        return True
    rows = batch["index"][:8].tolist() if "index" in batch else []
    raise NonFiniteLossError(
        f"non-finite training loss ({float(loss.detach()):g}) at epoch {module.current_epoch}, global step "
        f"{trainer.global_step}, batch {batch_idx} of the epoch (first example rows {rows}); the run stops "
        "before this update, so the last checkpoint holds the last good weights. Lower --model.optimizer.lr, "
        "check those rows, or pass --model.nonfinite_loss skip to skip such batches."
    )
