"""Per-class (multi-label: per-label) precision, recall and F1 at the end of `test`: a rich table in the terminal, a
CSV in the run directory and, with a W&B logger, the table (single-label also a confusion-matrix chart) in the run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from rich.console import Console
from rich.table import Table
from torchmetrics.classification import MulticlassConfusionMatrix, MultilabelStatScores
from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

from textcls.multilabel import decide, label_stat_scores
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


def per_label_scores(stat_scores: torch.Tensor) -> list[dict[str, float]]:
    """Precision, recall, F1 and support per label from torchmetrics' per-label stat scores [C, 5] (tp, fp, tn, fn,
    support), 0 for an undefined ratio as in test/f1_macro."""

    def ratio(top: torch.Tensor, bottom: torch.Tensor) -> list[float]:
        return torch.where(bottom > 0, top / bottom.clamp(min=1), 0.0).tolist()

    tp, fp, _tn, fn, support = stat_scores.double().unbind(dim=1)
    columns = zip(
        ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn), support.long().tolist(), strict=True
    )
    return [{"precision": p, "recall": r, "f1": f, "support": s} for p, r, f, s in columns]


def write_scores_csv(path: Path, names: list[str], scores: list[dict[str, float]], first_column: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([first_column, "precision", "recall", "f1", "support"])
        for name, s in zip(names, scores, strict=True):
            writer.writerow([name, s["precision"], s["recall"], s["f1"], s["support"]])


def _label_names(pl_module: pl.LightningModule) -> list[str]:
    return list(getattr(pl_module, "label_names"))  # noqa: B009  (TextClassifier's attribute; mypy sees Module)


class ClassificationReport(Callback):
    """Collect a confusion matrix over the test set; at its end print per-class precision / recall / F1, write them
    to `test_per_class.csv` in the run directory and, with a WandbLogger, log `test/per_class` (a table) and
    `test/confusion_matrix` (a chart). A multi-label model: per-label counts at its thresholds, `test_per_label.csv`
    and `test/per_label`.

    Args:
        max_classes_printed: above this many classes the terminal shows only the worst classes by F1.
    """

    def __init__(self, max_classes_printed: int = 30) -> None:
        self.max_classes_printed = max_classes_printed
        self.confusion: MulticlassConfusionMatrix | MultilabelStatScores | None = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        num_classes = len(_label_names(pl_module))
        multi_label = getattr(pl_module, "multi_label", False)
        counts = label_stat_scores(num_classes) if multi_label else MulticlassConfusionMatrix(num_classes)
        self.confusion = counts.to(pl_module.device)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(self.confusion, MultilabelStatScores) and isinstance(outputs, torch.Tensor):
            thresholds = getattr(pl_module, "thresholds")  # noqa: B009  (a multi-label TextClassifier's buffer)
            self.confusion.update(decide(torch.sigmoid(outputs.float()), thresholds), batch["labels"].long())
        elif self.confusion is not None and isinstance(outputs, torch.Tensor):
            self.confusion.update(outputs.argmax(dim=-1), batch["labels"])

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.confusion is None or not self.confusion.update_called:
            return
        multi_label = isinstance(self.confusion, MultilabelStatScores)
        matrix = self.confusion.compute().cpu()  # summed over all ranks under DDP
        self.confusion = None
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # on every rank: log_dir is a broadcast
        if trainer.is_global_zero:
            self._report(trainer, run_dir, _label_names(pl_module), matrix, multi_label)

    def _report(
        self, trainer: pl.Trainer, run_dir: Path, names: list[str], matrix: torch.Tensor, multi_label: bool = False
    ) -> None:
        scores = per_label_scores(matrix) if multi_label else per_class_scores(matrix)
        kind = "label" if multi_label else "class"
        self._print(names, scores, kind)
        write_scores_csv(run_dir / f"test_per_{kind}.csv", names, scores, kind)
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        import wandb
        from wandb.plot.custom_chart import plot_table

        per_class = wandb.Table(
            columns=[kind, "precision", "recall", "f1", "support"],
            data=[[n, s["precision"], s["recall"], s["f1"], s["support"]] for n, s in zip(names, scores, strict=True)],
        )
        if multi_label:
            for logger in loggers:
                logger.experiment.log({"test/per_label": per_class, "trainer/global_step": trainer.global_step})
            return
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

    def _print(self, names: list[str], scores: list[dict[str, float]], kind: str = "class") -> None:
        rows = list(zip(names, scores, strict=True))
        title = f"Test: per-{kind} precision / recall / F1"
        if len(rows) > self.max_classes_printed:
            rows = sorted(rows, key=lambda row: row[1]["f1"])[: self.max_classes_printed]
            plural = "classes" if kind == "class" else "labels"
            title += f" ({self.max_classes_printed} lowest F1 of {len(names)} {plural})"
        table = Table(title=title)
        table.add_column(kind)
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
