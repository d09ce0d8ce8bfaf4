"""TextClassifier: the one LightningModule. Loss, metrics, and the wiring of the injected optimizer and schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.utilities import GradClipAlgorithmType, rank_zero_info, rank_zero_warn
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from textcls.data.errors import DataError
from textcls.embeddings import check_vectors_file, load_pretrained
from textcls.optim import (
    WarmupCosine,
    build_optimizer,
    check_gradient_clipping,
    check_sparse_optimizer,
    clip_gradients,
    has_sparse_groups,
    keyword_unset,
    parameter_groups,
)


class TrainStats:
    """Running confusion matrix and loss sum of the training batches of an epoch (plain tensors, not buffers: DDP
    would overwrite buffers with rank 0's every step). `compute` sums them over the ranks."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion: torch.Tensor | None = None
        self.loss_sum: torch.Tensor | None = None
        self._ones: torch.Tensor | None = None  # the per-example increment of the confusion matrix, reused

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        if self.confusion is None or self.loss_sum is None:
            self.confusion = torch.zeros(self.num_classes**2, dtype=torch.float64, device=logits.device)
            self.loss_sum = torch.zeros(2, dtype=torch.float64, device=logits.device)
        elif self.confusion.device != logits.device:  # restored from a checkpoint onto the CPU
            self.confusion, self.loss_sum = self.confusion.to(logits.device), self.loss_sum.to(logits.device)
        # Few and in-place tensor ops: on a small model every op here is a visible share of the step.
        count = len(labels)
        if self._ones is None or len(self._ones) < count or self._ones.device != logits.device:
            self._ones = torch.ones(count, dtype=torch.float64, device=logits.device)
        cells = logits.argmax(dim=-1).add_(labels, alpha=self.num_classes)
        self.confusion.index_add_(0, cells, self._ones[:count])
        self.loss_sum[0].add_(loss, alpha=count)  # in float64, as loss.double() * count
        self.loss_sum[1].add_(count)

    def compute(self, strategy: Any) -> dict[str, torch.Tensor]:
        if self.confusion is None or self.loss_sum is None:
            return {}
        totals = strategy.reduce(torch.cat([self.confusion, self.loss_sum]), reduce_op="sum")
        confusion = totals[: self.num_classes**2].view(self.num_classes, self.num_classes)
        tp = confusion.diag()
        f1 = torch.where(tp > 0, 2 * tp / (confusion.sum(0) + confusion.sum(1)).clamp(min=1), 0.0)
        return {
            "train/acc": (tp.sum() / confusion.sum().clamp(min=1)).float(),
            "train/f1": f1.mean().float(),  # macro: every class weighs the same (0 for a class never right)
            "train/loss_epoch": (totals[-2] / totals[-1].clamp(min=1)).float(),
        }

    def reset(self) -> None:
        self.confusion = self.loss_sum = None

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"confusion": self.confusion, "loss_sum": self.loss_sum}

    def summed_state_dict(self, strategy: Any) -> dict[str, torch.Tensor | None]:
        """The state summed over the DDP ranks (a collective: every rank calls it, as every rank saves together).
        Restored into one rank with the others empty, it counts every rank's batches once."""
        if strategy.world_size < 2:
            return self.state_dict()
        device = strategy.root_device
        confusion = self.confusion if self.confusion is not None else torch.zeros(self.num_classes**2, device=device)
        loss_sum = self.loss_sum if self.loss_sum is not None else torch.zeros(2, device=device)
        totals = strategy.reduce(torch.cat([confusion.double(), loss_sum.double()]), reduce_op="sum")
        return {"confusion": totals[: self.num_classes**2].clone(), "loss_sum": totals[self.num_classes**2 :].clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.confusion, self.loss_sum = state["confusion"], state["loss_sum"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the batch."""


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
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = WarmupCosine,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        lr_scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        decay_embeddings: bool = False,
        label_names: list[str] | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        nonfinite_loss: Literal["stop", "skip"] = "stop",
        pretrained_embeddings: str | None = None,
        freeze_embeddings: bool = False,
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
        if nonfinite_loss not in ("stop", "skip"):
            raise ValueError(f"--model.nonfinite_loss must be 'stop' or 'skip', got {nonfinite_loss!r}.")
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
        self.resuming_fit = False  # see prepare_fit
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
        # Training metrics are a running confusion matrix and loss sum: a few tensor ops per step, where two
        # torchmetrics updates and a self.log every step cost more than a small model's whole step on a CPU.
        self.train_stats = TrainStats(num_classes)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_acc_best = MaxMetric()
        # Weighted by batch size and synced as sum and count: exact over the evaluation set even when DDP ranks hold
        # different numbers of examples (Lightning's sync_dist would average the ranks' means).
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def prepare_fit(self, resuming: bool, gradient_clip_val: float | None = None) -> None:
        """Called by the CLI before `fit`: whether it resumes from a checkpoint (Lightning tells the module only after
        `setup`, where the vectors are read; a resumed fit must not read them: the checkpoint has the weights and the
        file may be gone). A fresh fit checks the vector file's first line now, and every fit the optimizer's fit with
        sparse embedding gradients, before the run writes anything."""
        self.resuming_fit = resuming
        if self.freeze_embeddings:  # as setup does: a frozen table is left out of the optimizer
            self._embedding().weight.requires_grad_(False)
        groups = parameter_groups(self.model, decay_embeddings=self.decay_embeddings)
        if has_sparse_groups(groups):
            check_gradient_clipping(groups, gradient_clip_val)
            check_sparse_optimizer(self.optimizer_factory, groups, self.device)
        if self.pretrained_embeddings and not resuming:
            check_vectors_file(self.pretrained_embeddings, self._embedding().embedding_dim)
        elif self.freeze_embeddings and not resuming:
            rank_zero_warn("--model.freeze_embeddings without --model.pretrained_embeddings: random vectors stay fixed")

    def _embedding(self) -> nn.Embedding:
        """The network's word embedding table (checked to exist in __init__ when an option needs it)."""
        embedding = self.model.embedding
        assert isinstance(embedding, nn.Embedding)
        return embedding

    def setup(self, stage: str) -> None:
        if self.freeze_embeddings:  # before configure_optimizers, which leaves frozen parameters out
            self._embedding().weight.requires_grad_(False)
        nb_weighting = getattr(self.model, "nb_weighting", False)
        needs_data = self.pretrained_embeddings or nb_weighting
        if not (needs_data and stage == "fit" and not self.resuming_fit and self.trainer.ckpt_path is None):
            return  # (a fresh fit only: a resumed one has both in its checkpoint)
        if self.pretrained_embeddings:
            self._load_pretrained_embeddings(str(self.pretrained_embeddings))
        if nb_weighting:
            self._fit_nb_weights()

    def _fit_nb_weights(self) -> None:
        """Count the training data for the network's Naive Bayes feature weights (textcls.models.MLP nb_weighting).
        Every DDP rank counts the whole training split, in file order, so the ranks agree without a collective."""
        batches = getattr(getattr(self.trainer, "datamodule", None), "labelled_train_batches", None)
        if batches is None:
            raise DataError("--model.model.init_args.nb_weighting needs a DataModule with labelled_train_batches.")
        cast(Any, self.model).fit_nb_weights(batches())

    def _load_pretrained_embeddings(self, path: str) -> None:
        tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        if tokenizer is None or not hasattr(tokenizer, "vocab"):
            raise DataError("--model.pretrained_embeddings needs a DataModule with a tokenizer vocabulary.")

        reported = [0]

        def progress(fraction: float) -> None:  # a line per tenth of a large file
            if int(fraction * 10) > reported[0]:
                reported[0] = int(fraction * 10)
                rank_zero_info(f"pretrained vectors: {fraction:.0%} of {path} read")

        coverage = load_pretrained(
            self._embedding(),
            path,
            tokenizer.vocab,
            lowercase=bool(getattr(tokenizer, "lowercase", False)),
            skip_ids=[getattr(tokenizer, "unk_id", 1)],
            progress=progress,
        )
        rank_zero_info(coverage.message())
        if coverage.percent < 50:
            rank_zero_warn(f"only {coverage.percent:.1f} % of the vocabulary has a pretrained vector in {path}.")
        for logger in self.loggers:
            logger.log_hyperparams(
                {"pretrained_vectors_found": coverage.found, "pretrained_vectors_coverage": round(coverage.percent, 2)}
            )

    def configure_model(self) -> None:
        if self.compile_network and getattr(self.model, "_compiled_call_impl", None) is None:
            # nn.Module.compile compiles the forward in place: parameter names (and so checkpoints) do not change.
            self.model.compile(mode=self.compile_mode)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        logits = self(batch["input_ids"])
        loss = self._loss(logits, batch["labels"])
        if self._nonfinite(loss, batch, batch_idx):
            self.skipped_batches += 1
            return None  # Lightning skips backward and the optimizer step for this batch
        # Accumulated every step, computed once per epoch: no per-step sync or .item().
        self.train_stats.update(logits.detach(), batch["labels"], loss.detach())
        redraw = (batch_idx + 1) % 10 == 0 or batch_idx + 1 >= self.trainer.num_training_batches
        if redraw or self.trainer._logger_connector.should_update_logs:
            # The batches the throttled progress bar redraws after (so it shows the current loss, not one 9 steps
            # old), and every step the loggers write (trainer.log_every_n_steps).
            self.log("train/loss_step", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def _nonfinite(self, loss: torch.Tensor, batch: dict[str, torch.Tensor], batch_idx: int) -> bool:
        """Whether to skip this batch; raises NonFiniteLossError in "stop" mode. All DDP ranks decide alike."""
        # One host read per step (a device sync on GPU): the price of never applying a NaN update.
        if self.trainer.world_size > 1:
            bad = (~torch.isfinite(loss.detach())).float()
            if not bool(self.trainer.strategy.reduce(bad, reduce_op="max") > 0):
                return False
        elif math.isfinite(loss.item()):  # no tensor op: a plain float read is all one process needs
            return False
        if self.nonfinite_loss == "skip":
            return True
        rows = batch["index"][:8].tolist() if "index" in batch else []
        raise NonFiniteLossError(
            f"non-finite training loss ({float(loss.detach()):g}) at epoch {self.current_epoch}, global step "
            f"{self.trainer.global_step}, batch {batch_idx} of the epoch (first example rows {rows}); the run stops "
            "before this update, so the last checkpoint holds the last good weights. Lower --model.optimizer.lr, "
            "check those rows, or pass --model.nonfinite_loss skip to skip such batches."
        )

    def on_train_epoch_end(self) -> None:
        # Each epoch-end value here is reduced over the DDP ranks already (TrainStats' sums, torchmetrics' compute),
        # so it is the same on every rank: `sync_dist` with "max" tells Lightning so and keeps it exact.
        self.log_dict(self.train_stats.compute(self.trainer.strategy), sync_dist=True, reduce_fx="max")
        self.train_stats.reset()
        if self.nonfinite_loss == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches), reduce_fx="max", sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"])
        self.val_metrics.update(logits, batch["labels"])
        self.val_loss.update(self._loss(logits, batch["labels"]), weight=len(logits))

    def on_validation_epoch_end(self) -> None:
        values = {**self.val_metrics.compute(), "val/loss": self.val_loss.compute()}
        self.val_metrics.reset()
        self.val_loss.reset()
        self.log_dict(values, prog_bar=True, sync_dist=True, reduce_fx="max")  # synced: see on_train_epoch_end
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, reduce_fx="max")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"])
        self.test_metrics.update(logits, batch["labels"])
        self.test_loss.update(self._loss(logits, batch["labels"]), weight=len(logits))
        return logits  # for callbacks that need predictions (textcls.reporting's per-class report)

    def on_test_epoch_end(self) -> None:
        values = {**self.test_metrics.compute(), "test/loss": self.test_loss.compute()}
        self.log_dict(values, sync_dist=True, reduce_fx="max")  # synced: see on_train_epoch_end
        self.test_metrics.reset()
        self.test_loss.reset()

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        probs = torch.softmax(self(batch["input_ids"]).float(), dim=-1)
        return {"index": batch["index"], "probs": probs}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The epoch's running training metrics, so a run resumed mid-epoch reports what an uninterrupted one does.
        checkpoint["train_stats"] = self.train_stats.summed_state_dict(self.trainer.strategy)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Under DDP the file holds the sum over the ranks; only rank 0 takes it back, so nothing is counted twice.
        if "train_stats" in checkpoint and self.global_rank == 0:
            self.train_stats.load_state_dict(checkpoint["train_stats"])

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
        groups = parameter_groups(self.model, decay_embeddings=self.decay_embeddings)
        # Also here, for fits that skip the CLI's prepare_fit (Python users calling Trainer.fit): torch's clipping would
        # otherwise fail at the first step with NotImplementedError.
        check_gradient_clipping(groups, self.trainer.gradient_clip_val)
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
