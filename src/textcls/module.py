"""TextClassifier: the one LightningModule. Loss, metrics, and the wiring of the injected optimizer and schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.utilities import GradClipAlgorithmType
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from textcls.errors import UserError
from textcls.metrics import MultiLabelTrainStats, TrainStats, loss_is_read
from textcls.multilabel import MultiLabelDevMetrics, MultiLabelTestMetrics, ThresholdMode, multilabel_loss
from textcls.nonfinite import NonFiniteLossError, check_policy, skip_nonfinite
from textcls.optim import (
    WarmupCosine,
    build_optimizer,
    check_gradient_clipping,
    check_sparse_optimizer,
    clip_gradients,
    has_sparse_groups,
    keyword_unset,
    optimizer_class,
    parameter_groups,
)
from textcls.schedule_free import ScheduleFreeModes, has_modes

__all__ = ["NonFiniteLossError", "TextClassifier"]  # the error is re-exported for the CLI and for users


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
        label_smoothing: cross-entropy label smoothing in [0, 1) (multi-label: each target moves half of it toward 0.5).
        class_weights: a loss weight per class (multi-label: per label, on its positives), or "balanced".
        decay_embeddings: also apply the optimizer's weight decay to embedding tables (biases and norms never get it).
        label_names: class names in index order; LightningCLI fills them in from the data.
        compile: compile the network (not this LightningModule) with `torch.compile`; the checkpoint keys stay the same.
        compile_mode: `torch.compile` mode ("default", "reduce-overhead", "max-autotune"); unset means "default".
        nonfinite_loss: what a NaN/inf training loss does: "stop" ends the run with a message naming the step and the
            batch, before the bad update (the last checkpoint stays good); "skip" skips that batch's update and counts
            it in `train/skipped_batches`.
        pretrained_embeddings: word-vector file (word2vec / GloVe / fastText `.vec` text, optionally gzipped) whose
            vectors initialise the network's `embedding` at the start of a fresh fit; words missing from it keep a
            random vector. Never read when resuming, validating, testing or predicting (the checkpoint has the weights).
        freeze_embeddings: keep the network's `embedding` fixed during training (Kim's CNN-static); false fine-tunes
            it (CNN-non-static).
        multi_label: multi-label model: sigmoid outputs, BCE (linked from the data).
        threshold_mode: multi-label thresholds tuned on dev: "per_label" or "global".
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = WarmupCosine,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        lr_scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        class_weights: list[float] | Literal["balanced"] | None = None,
        decay_embeddings: bool = False,
        label_names: list[str] | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        pretrained_embeddings: str | None = None,
        freeze_embeddings: bool = False,
        multi_label: bool = False,
        threshold_mode: ThresholdMode = "per_label",
    ) -> None:
        super().__init__()
        if not label_names or len(label_names) < 2:
            raise ValueError("TextClassifier needs label_names with at least two classes (the CLI links them in).")
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ValueError(f"--model.class_weights must be a list of weights or 'balanced', got {class_weights!r}.")
        if isinstance(class_weights, list) and len(class_weights) != len(label_names):
            raise ValueError(
                f"--model.class_weights has {len(class_weights)} values but there are {len(label_names)} classes "
                f"({', '.join(label_names)}); give one weight per class."
            )
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"--model.lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}.")
        if threshold_mode not in ("per_label", "global"):
            raise ValueError(f"--model.threshold_mode must be 'per_label' or 'global', got {threshold_mode!r}.")
        check_policy(nonfinite_loss)
        embedding = getattr(model, "embedding", None)
        if (pretrained_embeddings or freeze_embeddings) and not isinstance(embedding, nn.Embedding):
            option = "pretrained_embeddings" if pretrained_embeddings else "freeze_embeddings"
            raise ValueError(
                f"--model.{option} needs a network with an `embedding` (nn.Embedding) over the vocabulary; "
                f"{type(model).__name__} has none."
            )
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
        # Not `self.compile`: that would hide nn.Module.compile.
        self.compile_network, self.compile_mode = compile, compile_mode
        self.nonfinite_loss = nonfinite_loss
        self.skipped_batches = 0
        self.pretrained_embeddings, self.freeze_embeddings = pretrained_embeddings, freeze_embeddings
        if freeze_embeddings:  # so configure_optimizers leaves the table out
            self.embedding_table().weight.requires_grad_(False)
        self.initialised_from_data = False  # set by textcls.initialisers.initialise_from_data
        self.multi_label, self.threshold_mode = multi_label, threshold_mode
        num_classes = len(label_names)
        self.balanced_weights = class_weights == "balanced"  # counted by textcls.initialisers.initialise_from_data
        self.class_weights: torch.Tensor | None
        weights = torch.ones(num_classes) if self.balanced_weights else None
        if isinstance(class_weights, list):
            weights = torch.tensor(class_weights, dtype=torch.float32)
        # Persistent, so test and resume weigh the loss as training did (balanced weights are not typed anywhere).
        self.register_buffer("class_weights", weights, persistent=weights is not None)
        if multi_label:
            self.thresholds: torch.Tensor
            # 0.5 until tuned on dev (MultiLabelDevMetrics.compute); persistent: prediction and export read them
            self.register_buffer("thresholds", torch.full((num_classes,), 0.5))
            self.train_stats: TrainStats | MultiLabelTrainStats = MultiLabelTrainStats(num_classes)
            self.val_metrics: Any = MultiLabelDevMetrics(num_classes)
            self.test_metrics: Any = MultiLabelTestMetrics(num_classes)
            self.val_f1_best = MaxMetric()
        else:
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
            self.train_stats = TrainStats(num_classes)
            self.val_metrics = metrics.clone(prefix="val/")
            self.test_metrics = metrics.clone(prefix="test/")
            self.val_acc_best = MaxMetric()
        # Weighted by batch size and synced as sum and count: exact over the evaluation set even when DDP ranks hold
        # different numbers of examples (Lightning's sync_dist would average the ranks' means).
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def embedding_table(self) -> nn.Embedding:
        """The network's word embedding table (checked to exist in __init__ when an option needs it)."""
        embedding = self.model.embedding
        assert isinstance(embedding, nn.Embedding)
        return embedding

    def check_optimizer(self, gradient_clip_val: float | None) -> list[dict[str, Any]]:
        """The parameter groups, once checked against sparse embedding gradients: the optimizer must train them and
        clipping has no kernel for them. The CLI calls it before fit too, so the run writes nothing first."""
        groups = parameter_groups(self.model, decay_embeddings=self.decay_embeddings)
        if has_sparse_groups(groups):
            check_gradient_clipping(groups, gradient_clip_val)
            check_sparse_optimizer(self.optimizer_factory, groups, self.device)
        return groups

    def on_fit_start(self) -> None:
        # (Not in setup: Lightning tells of a resume, whose checkpoint holds the weights, only after it.)
        needs_data = self.pretrained_embeddings or self.balanced_weights or getattr(self.model, "nb_weighting", False)
        if needs_data and not self.initialised_from_data and self.trainer.ckpt_path is None:
            raise UserError(
                "--model.pretrained_embeddings, class_weights balanced and nb_weighting need the training data before "
                "a fresh fit: call textcls.initialisers.initialise_from_data(model, datamodule) before Trainer.fit "
                "(the CLI does)."
            )

    def configure_callbacks(self) -> list[pl.Callback]:
        # From the module, not the CLI's callback list: a Schedule-Free optimizer needs its train/eval switches under
        # any Trainer (Python or CLI) and whatever `trainer.callbacks` the user configures.
        built = optimizer_class(self.optimizer_factory)
        if built is not None and not has_modes(built):
            return []  # Adam and the like: no callback, no per-batch hook
        if any(isinstance(c, ScheduleFreeModes) for c in self.trainer.callbacks):  # type: ignore[attr-defined]
            return []  # test after fit, or the user's own: Lightning would replace it and say so
        return [ScheduleFreeModes()]

    def configure_model(self) -> None:
        if self.compile_network and getattr(self.model, "_compiled_call_impl", None) is None:
            # nn.Module.compile compiles the forward in place: parameter names (and so checkpoints) do not change.
            self.model.compile(mode=self.compile_mode)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if (labels.dim() == 2) != self.multi_label:  # cross-entropy would take multi-hot rows as soft targets
            raise UserError(
                f"the batches hold {'multi-hot' if labels.dim() == 2 else 'single'} labels but --model.multi_label is "
                f"{str(self.multi_label).lower()}: a model trains for the task of its data (the CLI links them)."
            )
        if self.multi_label:
            return multilabel_loss(logits, labels, self.class_weights, self.label_smoothing)
        return F.cross_entropy(logits.float(), labels, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        logits = self(batch["input_ids"])
        loss = self._loss(logits, batch["labels"])
        if skip_nonfinite(self, loss, batch, batch_idx, self.nonfinite_loss):
            self.skipped_batches += 1
            return None  # Lightning skips backward and the optimizer step for this batch
        self.train_stats.update(logits.detach(), batch["labels"], loss.detach(), *self._decision())  # no sync, .item()
        if loss_is_read(self.trainer, batch_idx):  # a self.log costs more than a small model's step on a CPU
            self.log("train/loss_step", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def on_train_epoch_end(self) -> None:
        # Each epoch-end value here is reduced over the DDP ranks already (TrainStats' sums, torchmetrics' compute),
        # so it is the same on every rank: `sync_dist` with "max" tells Lightning so and keeps it exact.
        self.log_dict(self.train_stats.compute(), sync_dist=True, reduce_fx="max")
        self.train_stats.reset()
        if self.nonfinite_loss == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches), reduce_fx="max", sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"])
        self.val_metrics.update(logits, batch["labels"])
        self.val_loss.update(self._loss(logits, batch["labels"]), weight=len(logits))

    def _decision(self) -> tuple[torch.Tensor, ...]:
        """The extra argument of the multi-label metrics' update: the thresholds in use."""
        return (self.thresholds,) if self.multi_label else ()

    def on_validation_epoch_end(self) -> None:
        tuning = not self.trainer.sanity_checking
        if self.multi_label:  # tunes the thresholds first (not on sanity checks), then scores at them
            metrics = self.val_metrics.compute(self.thresholds, self.threshold_mode if tuning else None)
        else:
            metrics = self.val_metrics.compute()
        values = {**metrics, "val/loss": self.val_loss.compute()}
        self.val_metrics.reset()
        self.val_loss.reset()
        self.log_dict(values, prog_bar=True, sync_dist=True, reduce_fx="max")  # synced: see on_train_epoch_end
        if tuning:
            best, key = (self.val_f1_best, "val/f1_macro") if self.multi_label else (self.val_acc_best, "val/acc")
            best.update(values[key])
            self.log(f"{key}_best", best.compute(), sync_dist=True, reduce_fx="max")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"])
        self.test_metrics.update(logits, batch["labels"], *self._decision())
        self.test_loss.update(self._loss(logits, batch["labels"]), weight=len(logits))
        return logits  # for callbacks that need predictions (textcls.reporting's per-class report)

    def on_test_epoch_end(self) -> None:
        values = {**self.test_metrics.compute(), "test/loss": self.test_loss.compute()}
        self.log_dict(values, sync_dist=True, reduce_fx="max")  # synced: see on_train_epoch_end
        self.test_metrics.reset()
        self.test_loss.reset()

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self(batch["input_ids"]).float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return {"index": batch["index"], "probs": probs}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The epoch's running training metrics, so a run resumed mid-epoch reports what an uninterrupted one does.
        checkpoint["train_stats"] = self.train_stats.summed_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.class_weights is not None and not self.balanced_weights:
            # Typed weights come from the config, which beats the checkpoint (whose older versions did not save them).
            checkpoint["state_dict"]["class_weights"] = self.class_weights.clone()
        # Under DDP the file holds the sum over the ranks; only rank 0 takes it back, so nothing is counted twice.
        if "train_stats" in checkpoint and self.global_rank == 0:
            self.train_stats.restore(checkpoint["train_stats"])

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        # Plain and mixed precision clip here, fused kernels included (Lightning's AMP plugin would refuse them);
        # other plugins (DeepSpeed, FSDP) keep their own clipping.
        plugin = self.trainer.precision_plugin
        if not gradient_clip_val or type(plugin) not in (Precision, MixedPrecision):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        clip_gradients(plugin, optimizer, gradient_clip_val, GradClipAlgorithmType(gradient_clip_algorithm or "norm"))
        return None

    def configure_optimizers(self) -> Any:
        groups = self.check_optimizer(self.trainer.gradient_clip_val)
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
