"""Callbacks the CLI adds: a per-epoch metrics line, and the prediction CSV writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, Callback
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

console = Console(highlight=False)


class EpochSummary(Callback):
    """Print one line of validation metrics per epoch, so the history stays readable after the progress bar."""

    # on_validation_end, not on_validation_epoch_end: callbacks run before the module's epoch-end hook, which is
    # where the epoch's accuracy is computed and logged.
    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        shown = [k for k in ("train/loss_step", "val/loss", "val/acc", "val/f1", "val/acc_best") if k in metrics]
        parts = [f"{k.removesuffix('_step')} {float(metrics[k]):.4f}" for k in shown]
        console.print(f"[bold]epoch {trainer.current_epoch}[/bold]  " + "  ".join(parts), soft_wrap=True)


class PredictionWriter(BasePredictionWriter):
    """Write `predictions.csv` (id, label, probability, one probability column per class) into the run directory.

    Rows are streamed batch by batch to a temporary file that is renamed only when every batch is written, so an
    interrupted run never leaves a partial file under the final name.

    Args:
        filename: name of the CSV inside the run directory.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch")
        self.filename = filename
        self.path: Path | None = None
        self._writer: pacsv.CSVWriter | None = None
        self._tmp: Path | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.filename}.{os.getpid()}.tmp")
        self._writer = None

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, torch.Tensor],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        names: list[str] = list(getattr(pl_module, "label_names"))  # noqa: B009 (LightningModule attrs are loosely typed)
        probs = prediction["probs"].cpu()
        best_prob, best = probs.max(dim=-1)
        columns = {
            "id": pa.array(prediction["index"].cpu().numpy()),
            "label": pa.array([names[i] for i in best.tolist()], pa.string()),
            "probability": pa.array(best_prob.numpy()),
        }
        for i, name in enumerate(names):
            columns[f"p_{name}"] = pa.array(probs[:, i].numpy())
        table = pa.table(columns)
        if self._writer is None:
            self._writer = pacsv.CSVWriter(str(self._tmp), table.schema)
        self._writer.write_table(table)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._writer is None or self.path is None or self._tmp is None:
            return
        self._writer.close()
        os.replace(self._tmp, self.path)
        console.print(f"Predictions written to [bold]{self.path}[/bold]")
