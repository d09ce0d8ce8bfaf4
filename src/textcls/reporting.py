"""Per-class precision, recall and F1 at the end of `test`: a rich table in the terminal and, with a W&B logger, a
per-class table and a confusion-matrix chart in the W&B run."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from rich.console import Console
from rich.table import Table
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

from textcls.tracking import wandb_loggers

console = Console(highlight=False)


def per_class_scores(confusion: torch.Tensor) -> list[dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows: true class, columns: predicted),
    by torchmetrics' formulas (as val/f1 and test/f1): a class never predicted (or never present) gets 0 for the
    undefined ratio, as scikit-learn's zero_division=0."""
    num_classes = len(confusion)
    if not confusion.any():  # no test example: every ratio undefined
        return [{"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for _ in range(num_classes)]
    # The (true, predicted) pairs the counts stand for: one pass over the test set's size, once per test.
    cells = torch.repeat_interleave(torch.arange(num_classes**2), confusion.flatten().long().cpu())
    target, preds = cells // num_classes, cells % num_classes
    scores = [
        score(preds, target, num_classes, average=None, validate_args=False)
        for score in (multiclass_precision, multiclass_recall, multiclass_f1_score)
    ]
    support = confusion.sum(dim=1)
    return [
        {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for p, r, f, s in zip(*scores, support, strict=True)
    ]


def _label_names(pl_module: pl.LightningModule) -> list[str]:
    return list(getattr(pl_module, "label_names"))  # noqa: B009  (TextClassifier's attribute; mypy sees Module)


class ClassificationReport(Callback):
    """Collect a confusion matrix over the test set; at its end print per-class precision / recall / F1 and, with a
    WandbLogger, log `test/per_class` (a table) and `test/confusion_matrix` (a chart).

    Args:
        max_classes_printed: above this many classes the terminal shows only the worst classes by F1.
    """

    def __init__(self, max_classes_printed: int = 30) -> None:
        self.max_classes_printed = max_classes_printed
        self.confusion: MulticlassConfusionMatrix | None = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        num_classes = len(_label_names(pl_module))
        self.confusion = MulticlassConfusionMatrix(num_classes).to(pl_module.device)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.confusion is not None and isinstance(outputs, torch.Tensor):
            self.confusion.update(outputs.argmax(dim=-1), batch["labels"])

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.confusion is None or not self.confusion.update_called:
            return
        matrix = self.confusion.compute().cpu()  # summed over all ranks under DDP
        self.confusion = None
        if trainer.is_global_zero:
            self._report(trainer, _label_names(pl_module), matrix)

    def _report(self, trainer: pl.Trainer, names: list[str], matrix: torch.Tensor) -> None:
        scores = per_class_scores(matrix)
        self._print(names, scores)
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        import wandb
        from wandb.plot.custom_chart import plot_table

        per_class = wandb.Table(
            columns=["class", "precision", "recall", "f1", "support"],
            data=[[n, s["precision"], s["recall"], s["f1"], s["support"]] for n, s in zip(names, scores, strict=True)],
        )
        cells = [[names[i], names[j], int(matrix[i, j])] for i in range(len(names)) for j in range(len(names))]
        # The same chart wandb.plot.confusion_matrix draws, built from counts (which DDP can sum) instead of
        # per-example predictions.
        chart = plot_table(
            vega_spec_name="wandb/confusion_matrix/v1",
            data_table=wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=cells),
            fields={"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
            string_fields={"title": "Test confusion matrix"},
        )
        logged = {"test/per_class": per_class, "test/confusion_matrix": chart}
        logged["trainer/global_step"] = trainer.global_step
        for logger in loggers:
            logger.experiment.log(logged)

    def _print(self, names: list[str], scores: list[dict[str, float]]) -> None:
        rows = list(zip(names, scores, strict=True))
        title = "Test: per-class precision / recall / F1"
        if len(rows) > self.max_classes_printed:
            rows = sorted(rows, key=lambda row: row[1]["f1"])[: self.max_classes_printed]
            title += f" ({self.max_classes_printed} lowest F1 of {len(names)} classes)"
        table = Table(title=title)
        table.add_column("class")
        for column in ("precision", "recall", "f1", "support"):
            table.add_column(column, justify="right")
        for name, s in rows:
            table.add_row(name, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"]))
        total = sum(s["support"] for s in scores)
        macro = {k: sum(s[k] for s in scores) / len(scores) for k in ("precision", "recall", "f1")}
        table.add_row(
            "macro avg",
            f"{macro['precision']:.4f}",
            f"{macro['recall']:.4f}",
            f"{macro['f1']:.4f}",
            str(total),
            style="bold",
        )
        console.print(table)
