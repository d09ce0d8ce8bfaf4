"""Callbacks the CLI adds: a per-epoch metrics line, the prediction CSV writer, and a quiet end of DDP ranks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
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

from textcls.errors import UserError, environment_error, user_error
from textcls.records import threshold_problem

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
        keys = ("train/loss_step", "val/loss", "val/acc", "val/f1", "val/acc_best", "val/f1_macro", "val/f1_micro")
        shown = [k for k in (*keys, "val/map", "val/f1_macro_best") if k in metrics]
        parts = [f"{k.removesuffix('_step')} {float(metrics[k]):.4f}" for k in shown]
        console.print(f"[bold]epoch {trainer.current_epoch}[/bold]  " + "  ".join(parts), soft_wrap=True)


class PredictionWriter(BasePredictionWriter):
    """Write `predictions.csv` into the run directory, one row per input text in input order (a `filename` ending
    in `.jsonl` writes JSON Lines instead: one object per row, with the same keys).

    Columns: id (the row number), label, probability (of the predicted label), then one `p_<class>` column per
    class, or with `top_k` the next most probable labels instead (`label_2`, `probability_2`, ... `label_k`,
    `probability_k`). `keep_columns` puts input columns first; a kept `id` column replaces the row number.

    For a multi-label model: id, `labels` (the predicted labels in label order joined by `|`, empty when none reaches
    its threshold; in JSON Lines a list), then one `p_<label>` column per label, or with `top_k` the k most probable
    labels and their probabilities instead (`label`, `probability`, `label_2`, `probability_2`, ...).

    Rows are streamed batch by batch to temporary files that are renamed only when every batch is written, so an
    interrupted or failed run never leaves a partial file under the final name (and no temporary file either). Under
    DDP every rank writes its own part (Arrow IPC, typed) and rank 0 alone merges the parts by row into the one CSV,
    so no rank holds all predictions in memory while predicting and no predictions travel between processes.
    Probabilities that are not finite (a damaged or diverged checkpoint) stop the run with one line, nothing written.

    Args:
        filename: name of the CSV inside the run directory (ending in .jsonl: JSON Lines).
        top_k: write the k most probable labels and their probabilities instead of every class's probability.
        keep_columns: input columns of the predict file to carry into the CSV, e.g. [id]; unset keeps none.
        threshold: multi-label: one threshold (0-1) for every label instead of the tuned ones.
    """

    def __init__(
        self,
        filename: str = "predictions.csv",
        top_k: int | None = None,
        keep_columns: list[str] | None = None,
        threshold: float | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        if top_k is not None and top_k < 1:
            raise ValueError(f"--predictions.top_k must be a positive integer, got {top_k}.")
        problem = None if threshold is None else threshold_problem(threshold)
        if problem is not None:
            raise ValueError(f"--predictions.threshold {problem}.")
        self.filename = filename
        self._json_lines = Path(filename).suffix.lower() == ".jsonl"
        self.top_k = top_k
        self.keep_columns = list(keep_columns or [])
        self.threshold = threshold
        self._thresholds: torch.Tensor | None = None  # per label, float64; None for a single-label model
        self.path: Path | None = None
        self._writer: pacsv.CSVWriter | pa.ipc.RecordBatchFileWriter | _JsonLinesWriter | None = None
        self._tmp: Path | None = None
        self._distributed = False
        self._kept: pa.Table | None = None
        self._failure: UserError | None = None  # under DDP, raised by rank 0 once every rank has finished

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before the other callbacks' setup writes config.yaml, so a bad column leaves no run directory behind.
        if stage != "predict":
            return
        if self.threshold is not None and not _is_multi_label(pl_module):
            raise user_error(
                "--predictions.threshold applies to multi-label models only",
                f"--predictions.threshold {self.threshold}",
                "this checkpoint is single-label (the most probable label wins): leave it out",
            )
        names = list(getattr(pl_module, "label_names"))  # noqa: B009 (LightningModule attrs are loosely typed)
        self._check_names(names, _is_multi_label(pl_module))
        self._kept = self._input_columns(trainer) if self.keep_columns else None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Rank 0 names the file for everyone: the ranks must agree on the directory that holds the parts.
        path = trainer.strategy.broadcast(str(Path(trainer.log_dir or trainer.default_root_dir) / self.filename), src=0)
        self.path = Path(path)
        self._distributed = trainer.world_size > 1
        self._writer, self._failure = None, None
        self._thresholds = self._decision_thresholds(pl_module)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise environment_error(err, "write the predictions", self.path.parent, _WRITE_TODO) from None
        self._tmp = self._part(trainer.global_rank) if self._distributed else self._tmp_csv()

    def _decision_thresholds(self, pl_module: pl.LightningModule) -> torch.Tensor | None:
        # Read when predicting starts: the checkpoint's weights (and its tuned `thresholds` buffer) are loaded by then.
        if not _is_multi_label(pl_module):
            return None
        num_labels = len(getattr(pl_module, "label_names"))  # noqa: B009
        if self.threshold is not None:
            return torch.full((num_labels,), float(self.threshold), dtype=torch.float64)
        tuned = getattr(pl_module, "thresholds", None)
        if not torch.is_tensor(tuned):  # a module without the buffer: the untuned default
            return torch.full((num_labels,), 0.5, dtype=torch.float64)
        # float64, as the Python API compares: a probability exactly at a threshold is decided alike everywhere
        return torch.tensor(tuned.detach().cpu().tolist(), dtype=torch.float64)

    def _check_names(self, names: list[str], multi_label: bool = False) -> None:
        ours = {"label", "probability", *(f"p_{n}" for n in names), *(["labels"] if multi_label else [])}
        ours |= {f"{c}_{k}" for c in ("label", "probability") for k in range(2, len(names) + 1)}
        clash = [c for c in self.keep_columns if c in ours]
        if clash:
            raise user_error(
                f"invalid configuration: predictions.csv has a column {clash[0]!r} of its own",
                "--predictions.keep_columns",
                "keep input columns of other names (a kept `id` is the one that replaces textcls's row number)",
            )

    def _input_columns(self, trainer: pl.Trainer) -> pa.Table:
        read = getattr(getattr(trainer, "datamodule", None), "predict_columns", None)
        if read is None:
            raise user_error(
                "--predictions.keep_columns needs the predict data of textcls's TextDataModule",
                "--predictions.keep_columns",
                "predict through `textcls predict --data.predict_file ...`",
            )
        return read(self.keep_columns)

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
        if self._failure is not None:
            return  # under DDP: this rank already failed and waits for the others at the end
        try:
            names: list[str] = list(getattr(pl_module, "label_names"))  # noqa: B009
            table = self._table(prediction, names, trainer)
            if self._writer is None:
                if self._distributed:
                    self._writer = pa.ipc.new_file(str(self._tmp), table.schema)
                elif self._json_lines:
                    assert self._tmp is not None
                    self._writer = _JsonLinesWriter(self._tmp)
                else:
                    self._writer = pacsv.CSVWriter(str(self._tmp), table.schema)
            self._writer.write_table(table)
        except OSError as err:
            self._fail(environment_error(err, "write the predictions", self.path, _WRITE_TODO))
        except UserError as err:
            self._fail(err)

    def _fail(self, err: UserError) -> None:
        if not self._distributed:
            raise err
        self._failure = err  # a rank alone must not leave the others waiting in the barrier at the end

    def _table(self, prediction: dict[str, torch.Tensor], names: list[str], trainer: pl.Trainer) -> pa.Table:
        probs = prediction["probs"].float().cpu()
        rows = prediction["index"].cpu().numpy()
        if not bool(torch.isfinite(probs).all()):
            bad = rows[~torch.isfinite(probs).all(dim=-1).numpy()][:5].tolist()
            checkpoint = trainer.ckpt_path or "the model's weights"
            raise user_error(
                f"the model's probabilities are not finite (NaN or inf) for rows {bad}",
                str(checkpoint),
                "its weights are damaged or training diverged; use another checkpoint or retrain",
            )
        k = len(names) if self.top_k is None else min(self.top_k, len(names))
        top_prob, top = probs.topk(k, dim=-1)
        columns: dict[str, pa.Array] = {}
        if self._distributed:
            columns[_ROW] = pa.array(rows)
        if self._kept is not None:
            columns.update({name: self._kept[name].take(pa.array(rows)) for name in self.keep_columns})
        if "id" not in self.keep_columns:
            columns["id"] = pa.array(rows)
        if self._thresholds is not None:
            decided = (probs.double() >= self._thresholds).tolist()
            chosen = [[n for n, yes in zip(names, row, strict=True) if yes] for row in decided]
            if self._json_lines:
                columns["labels"] = pa.array(chosen, pa.list_(pa.string()))
            else:
                columns["labels"] = pa.array([LABEL_JOIN.join(row) for row in chosen], pa.string())
        if self._thresholds is None or self.top_k is not None:
            columns["label"] = pa.array([names[i] for i in top[:, 0].tolist()], pa.string())
            columns["probability"] = pa.array(top_prob[:, 0].numpy())
        if self.top_k is None:
            for i, name in enumerate(names):
                columns[f"p_{name}"] = pa.array(probs[:, i].numpy())
        else:
            for rank in range(1, k):
                columns[f"label_{rank + 1}"] = pa.array([names[i] for i in top[:, rank].tolist()], pa.string())
                columns[f"probability_{rank + 1}"] = pa.array(top_prob[:, rank].numpy())
        return pa.table(columns)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        try:
            self._finish(trainer)
        except OSError as err:
            raise environment_error(err, "write the predictions", self.path, _WRITE_TODO) from None
        finally:
            self._remove_temporary(trainer)
        if trainer.is_global_zero and self.path is not None and self.path.exists():
            console.print(f"Predictions written to [bold]{self.path}[/bold]")

    def _finish(self, trainer: pl.Trainer) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except OSError as err:
                self._fail(environment_error(err, "write the predictions", self.path, _WRITE_TODO))
        if self.path is None:
            return
        if self._distributed:
            failures = _gather_failures(self._failure)  # every rank's part is complete (or failed) after this
            if failures:
                if trainer.is_global_zero:
                    raise failures[0]
                return
            if trainer.is_global_zero:
                self._merge_parts(trainer.world_size)
            trainer.strategy.barrier()
        elif self._tmp is not None and self._tmp.exists():
            os.replace(self._tmp, self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self._remove_temporary(trainer)

    def _remove_temporary(self, trainer: pl.Trainer) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            if self._distributed and trainer.is_global_zero:  # rank 0 removes the parts it merged (or that failed)
                for rank in range(trainer.world_size):
                    self._part(rank).unlink(missing_ok=True)

    def _merge_parts(self, world_size: int) -> None:
        assert self.path is not None
        tables = []
        for part in (self._part(rank) for rank in range(world_size)):
            if part.exists():  # a rank that got no batch wrote no part
                with pa.memory_map(str(part)) as source:
                    tables.append(pa.ipc.open_file(source).read_all())
        if tables:
            merged = pa.concat_tables(tables).sort_by(_ROW)
            # The distributed sampler for predict does not repeat samples; dropping repeated rows keeps the file
            # one row per input even if a sampler ever pads ranks to equal length.
            rows = merged[_ROW].to_numpy()
            keep = np.ones(len(rows), dtype=bool)
            keep[1:] = rows[1:] != rows[:-1]
            tmp = self._tmp_csv()
            try:
                rows_table = merged.filter(pa.array(keep)).drop_columns([_ROW])
                if self._json_lines:
                    writer = _JsonLinesWriter(tmp)
                    try:
                        writer.write_table(rows_table)
                    finally:
                        writer.close()
                else:
                    pacsv.write_csv(rows_table, str(tmp))
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)


_ROW = "__row__"  # the row number in the per-rank parts, which the merge sorts by and drops
LABEL_JOIN = "|"  # between a multi-label row's labels in predictions.csv (the usual --data.label_separator)
_WRITE_TODO = "free space there or pass --runs_root a writable disk with room"


class _JsonLinesWriter:
    """predictions.jsonl, written like pyarrow's CSVWriter: a table at a time, one JSON object per row."""

    def __init__(self, path: Path) -> None:
        self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close(), like the CSV writer)

    def write_table(self, table: pa.Table) -> None:
        for batch in table.to_batches(max_chunksize=4096):
            # default=str: kept input columns may hold dates or decimals, which JSON has no type for
            lines = (json.dumps(row, ensure_ascii=False, default=str) for row in batch.to_pylist())
            self._handle.write("".join(line + "\n" for line in lines))

    def close(self) -> None:
        self._handle.close()


def _is_multi_label(pl_module: pl.LightningModule) -> bool:
    flag = getattr(pl_module, "multi_label", None)
    if flag is None:
        flag = getattr(pl_module, "hparams", {}).get("multi_label", False)
    return bool(flag)


def _gather_failures(failure: UserError | None) -> list[UserError]:
    """Every rank's failure (a collective: each rank calls it once, at the end of predict)."""
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, None if failure is None else str(failure))
    return [UserError(text) for text in gathered if text is not None]


class StopOtherRanks(Callback):
    """On a user error in rank 0 of a run started by Lightning's DDP launcher, end the other local ranks at once.

    They would otherwise wait in the next collective until rank 0's exit breaks the connection, then print a
    `Connection closed by peer` traceback under the user's one error line. Lightning does the same on Ctrl-C.
    """

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        kill = getattr(trainer.strategy.launcher, "kill", None)
        if isinstance(exception, UserError) and trainer.is_global_zero and kill is not None:
            kill(signal.SIGKILL)
