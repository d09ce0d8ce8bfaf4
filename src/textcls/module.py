"""TextClassifier: the one LightningModule. Loss, metrics, and the wiring of the injected optimizer and schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from textcls.optim import WarmupCosine, build_optimizer, keyword_unset, parameter_groups


class TextClassifier(pl.LightningModule):
    """Trains any network that maps a padded batch of token ids to class logits.

    Args:
        model: the network, e.g. `textcls.models.TextCNN` or `textcls.models.MLP`; its `vocab_size`, `num_classes`
            and `pad_id` come from the data.
        optimizer: the optimizer class and its arguments (Adam by default; any `torch.optim` class by class path).
            The fused kernel is used wherever the optimizer and device support it, unless `fused` is set.
        lr_scheduler: the learning-rate schedule; linear warmup + cosine decay per step by default, null for none.
        lr_scheduler_interval: step the schedule every "step" or every "epoch".
        lr_scheduler_monitor: metric a ReduceLROnPlateau schedule watches (it always steps per epoch).
        label_smoothing: cross-entropy label smoothing in [0, 1).
        class_weights: one loss weight per class, in the order of the label names; unset weighs all classes equally.
        decay_embeddings: also apply the optimizer's weight decay to embedding tables (biases and norms never get it).
        label_names: class names in index order; LightningCLI fills them in from the data.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = WarmupCosine,
        lr_scheduler_interval: str = "step",
        lr_scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        decay_embeddings: bool = False,
        label_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if not label_names or len(label_names) < 2:
            raise ValueError("TextClassifier needs label_names with at least two classes (the CLI links them in).")
        if class_weights is not None and len(class_weights) != len(label_names):
            raise ValueError(
                f"--model.class_weights has {len(class_weights)} values but there are {len(label_names)} classes "
                f"({', '.join(label_names)}); give one weight per class."
            )
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"--model.lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}.")
        with warnings.catch_warnings():
            # The warning suggests ignore=["model"], which would also drop the model's config that the CLI records
            # (the checkpoint then could not rebuild the network); the object itself is removed just below instead.
            warnings.filterwarnings("ignore", message="Attribute 'model' is an instance of `nn.Module`")
            self.save_hyperparameters()
        if isinstance(self.hparams.get("model"), nn.Module):
            # Built in Python rather than by the CLI: the network object is not plain data, and a checkpoint must load
            # with weights_only=True. Such checkpoints need `model=` again in load_from_checkpoint.
            del self.hparams["model"]
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.scheduler_interval = lr_scheduler_interval
        self.scheduler_monitor = lr_scheduler_monitor
        self.label_smoothing = label_smoothing
        self.decay_embeddings = decay_embeddings
        self.label_names = list(label_names)
        self.class_weights: torch.Tensor | None
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)

        num_classes = len(label_names)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_acc_best = MaxMetric()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"])
        loss = self._loss(logits, batch["labels"])
        # Metric objects are updated every step but computed once per epoch: no per-step sync or .item().
        self.train_metrics.update(logits.detach(), batch["labels"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(logits))
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"])
        loss = self._loss(logits, batch["labels"])
        self.val_metrics.update(logits, batch["labels"])
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(logits))

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log_dict(values, prog_bar=True)
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute())

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"])
        self.test_metrics.update(logits, batch["labels"])
        self.log(
            "test/loss", self._loss(logits, batch["labels"]), on_epoch=True, sync_dist=True, batch_size=len(logits)
        )
        return logits  # for callbacks that need predictions (textcls.reporting's per-class report)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        probs = torch.softmax(self(batch["input_ids"]).float(), dim=-1)
        return {"index": batch["index"], "probs": probs}

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.model, decay_embeddings=self.decay_embeddings)
        optimizer = build_optimizer(self.optimizer_factory, groups, self.device)
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        if keyword_unset(self.scheduler_factory, "total_steps"):
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ValueError("the schedule needs a finite run: set --trainer.max_epochs or --trainer.max_steps.")
            kwargs["total_steps"] = int(total)
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, ReduceLROnPlateau):
            config.update(interval="epoch", monitor=self.scheduler_monitor)
        return {"optimizer": optimizer, "lr_scheduler": config}
