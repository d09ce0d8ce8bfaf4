"""Callbacks the CLI adds: a per-epoch metrics line, and the prediction CSV writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
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
    """Write `predictions.csv` into the run directory, one row per input text in input order.

    Columns: id, label, probability (of the predicted label), then one `p_<class>` column per class, or with `top_k`
    the next most probable labels instead (`label_2`, `probability_2`, ... `label_k`, `probability_k`).

    Rows are streamed batch by batch to temporary files that are renamed only when every batch is written, so an
    interrupted run never leaves a partial file under the final name. Under DDP every rank writes its own part (Arrow
    IPC, typed) and rank 0 alone merges the parts by id into the one CSV, so no rank holds all predictions in memory
    while predicting and no predictions travel between processes.

    Args:
        filename: name of the CSV inside the run directory.
        top_k: write the k most probable labels and their probabilities instead of every class's probability.
    """

    def __init__(self, filename: str = "predictions.csv", top_k: int | None = None) -> None:
        super().__init__(write_interval="batch")
        if top_k is not None and top_k < 1:
            raise ValueError(f"--predictions.top_k must be a positive integer, got {top_k}.")
        self.filename = filename
        self.top_k = top_k
        self.path: Path | None = None
        self._writer: pacsv.CSVWriter | pa.ipc.RecordBatchFileWriter | None = None
        self._tmp: Path | None = None
        self._distributed = False

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Rank 0 names the file for everyone: the ranks must agree on the directory that holds the parts.
        path = trainer.strategy.broadcast(str(Path(trainer.log_dir or trainer.default_root_dir) / self.filename), src=0)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._distributed = trainer.world_size > 1
        self._tmp = self._part(trainer.global_rank) if self._distributed else self._tmp_csv()
        self._writer = None

    def _part(self, rank: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f".{self.filename}.rank{rank}.arrow.tmp")

    def _tmp_csv(self) -> Path:
        assert self.path is not None
        return self.path.with_name(f".{self.filename}.{os.getpid()}.tmp")

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
        table = self._table(prediction, names)
        if self._writer is None:
            if self._distributed:
                self._writer = pa.ipc.new_file(str(self._tmp), table.schema)
            else:
                self._writer = pacsv.CSVWriter(str(self._tmp), table.schema)
        self._writer.write_table(table)

    def _table(self, prediction: dict[str, torch.Tensor], names: list[str]) -> pa.Table:
        probs = prediction["probs"].float().cpu()
        k = len(names) if self.top_k is None else min(self.top_k, len(names))
        top_prob, top = probs.topk(k, dim=-1)
        columns = {
            "id": pa.array(prediction["index"].cpu().numpy()),
            "label": pa.array([names[i] for i in top[:, 0].tolist()], pa.string()),
            "probability": pa.array(top_prob[:, 0].numpy()),
        }
        if self.top_k is None:
            for i, name in enumerate(names):
                columns[f"p_{name}"] = pa.array(probs[:, i].numpy())
        else:
            for rank in range(1, k):
                columns[f"label_{rank + 1}"] = pa.array([names[i] for i in top[:, rank].tolist()], pa.string())
                columns[f"probability_{rank + 1}"] = pa.array(top_prob[:, rank].numpy())
        return pa.table(columns)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.path is None:
            return
        if self._distributed:
            trainer.strategy.barrier()  # every rank's part is complete before rank 0 reads them
            if trainer.is_global_zero:
                self._merge_parts(trainer.world_size)
            trainer.strategy.barrier()
        elif self._writer is not None and self._tmp is not None:
            os.replace(self._tmp, self.path)
        if trainer.is_global_zero and self.path.exists():
            console.print(f"Predictions written to [bold]{self.path}[/bold]")

    def _merge_parts(self, world_size: int) -> None:
        assert self.path is not None
        parts = [self._part(rank) for rank in range(world_size)]
        tables = []
        for part in parts:
            if part.exists():  # a rank that got no batch wrote no part
                with pa.memory_map(str(part)) as source:
                    tables.append(pa.ipc.open_file(source).read_all())
        if tables:
            merged = pa.concat_tables(tables).sort_by("id")
            # The distributed sampler for predict does not repeat samples; dropping repeated ids keeps the file
            # one row per input even if a sampler ever pads ranks to equal length.
            ids = merged["id"].to_numpy()
            keep = np.ones(len(ids), dtype=bool)
            keep[1:] = ids[1:] != ids[:-1]
            tmp = self._tmp_csv()
            pacsv.write_csv(merged.filter(pa.array(keep)), str(tmp))
            os.replace(tmp, self.path)
        for part in parts:
            part.unlink(missing_ok=True)
