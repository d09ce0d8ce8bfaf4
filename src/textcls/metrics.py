"""The running training metrics of an epoch: a confusion matrix (multi-label: per-label counts) and a loss sum, summed
over the DDP ranks."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torchmetrics import Metric


def loss_is_read(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether anyone reads the step loss after this batch: the progress bar redraws (every `refresh_rate` batches),
    the loggers write (every `log_every_n_steps` steps), or the epoch ends (textcls' epoch summary shows it)."""
    bar = trainer.progress_bar_callback
    every = int(getattr(bar, "refresh_rate", 1)) if bar is not None and getattr(bar, "is_enabled", True) else 0
    n = int(getattr(trainer, "log_every_n_steps", 0))  # set by the Trainer from its argument (no type stub)
    return (
        batch_idx + 1 >= trainer.num_training_batches
        or (every > 0 and (batch_idx + 1) % every == 0)
        or (n > 0 and (trainer.global_step + 1) % n == 0)
        or trainer.should_stop
    )


class _SummedStats(Metric):
    """Running sums of an epoch that a checkpoint keeps (see TextClassifier.on_save_checkpoint)."""

    full_state_update = False

    def summed_state(self) -> dict[str, torch.Tensor]:
        """The state summed over the DDP ranks (a collective: every rank calls it, as every rank saves together).
        Restored into one rank with the others empty, it counts every rank's batches once."""
        with self.sync_context(should_unsync=True):
            return {name: getattr(self, name).clone() for name in self._defaults}

    def restore(self, state: dict[str, torch.Tensor | None]) -> None:
        self.reset()
        for name in self._defaults:
            value = state.get(name)
            if value is not None:  # None: saved before the epoch's first batch
                setattr(self, name, value.to(getattr(self, name)))


class TrainStats(_SummedStats):
    """`train/acc`, `train/f1` (macro) and `train/loss_epoch` of the training batches of an epoch.

    One index_add and two in-place adds per step (two torchmetrics classification updates cost more than a small
    model's step on a CPU); computed, and synced over the ranks, once per epoch.
    """

    confusion: torch.Tensor
    loss_sum: torch.Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("confusion", torch.zeros(num_classes**2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")  # loss * n, n
        self._ones = torch.ones(0, dtype=torch.float64)  # the per-example increment of the confusion matrix, reused

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        count = len(labels)
        if len(self._ones) < count or self._ones.device != logits.device:
            self._ones = torch.ones(count, dtype=torch.float64, device=logits.device)
        cells = logits.argmax(dim=-1).add_(labels, alpha=self.num_classes)
        self.confusion.index_add_(0, cells, self._ones[:count])
        self.loss_sum[0].add_(loss, alpha=count)  # in float64, as loss.double() * count
        self.loss_sum[1].add_(count)

    def compute(self) -> dict[str, torch.Tensor]:
        if not self.loss_sum[1] > 0:
            return {}
        confusion = self.confusion.view(self.num_classes, self.num_classes)
        tp = confusion.diag()
        f1 = torch.where(tp > 0, 2 * tp / (confusion.sum(0) + confusion.sum(1)).clamp(min=1), 0.0)
        return {
            "train/acc": (tp.sum() / confusion.sum().clamp(min=1)).float(),
            "train/f1": f1.mean().float(),  # macro: every class weighs the same (0 for a class never right)
            "train/loss_epoch": (self.loss_sum[0] / self.loss_sum[1].clamp(min=1)).float(),
        }


class MultiLabelTrainStats(_SummedStats):
    """`train/f1_micro`, `train/f1_macro` (each label decided at its current threshold) and `train/loss_epoch` of the
    training batches of an epoch: per label the true positives, predicted and actual positives, summed per step."""

    counts: torch.Tensor
    loss_sum: torch.Tensor

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.add_state("counts", torch.zeros(3, num_labels, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")  # loss * n, n

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor, thresholds: torch.Tensor) -> None:
        predicted = (torch.sigmoid(logits.float()) >= thresholds).to(labels.dtype)
        self.counts[0].add_((predicted * labels).sum(dim=0))
        self.counts[1].add_(predicted.sum(dim=0))
        self.counts[2].add_(labels.sum(dim=0))
        count = len(labels)
        self.loss_sum[0].add_(loss, alpha=count)
        self.loss_sum[1].add_(count)

    def compute(self) -> dict[str, torch.Tensor]:
        if not self.loss_sum[1] > 0:
            return {}
        tp, predicted, actual = self.counts

        def f1(tp: torch.Tensor, both: torch.Tensor) -> torch.Tensor:  # 2 tp / (predicted + actual), 0 if undefined
            return torch.where(both > 0, 2 * tp / both.clamp(min=1), 0.0)

        return {
            "train/f1_micro": f1(tp.sum(), (predicted + actual).sum()).float(),
            "train/f1_macro": f1(tp, predicted + actual).mean().float(),
            "train/loss_epoch": (self.loss_sum[0] / self.loss_sum[1].clamp(min=1)).float(),
        }
