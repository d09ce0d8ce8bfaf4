"""TextDataModule: files (or the built-in demo) -> tokenizer and labels from the training split -> padded batches."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from textcls.data.batching import TokenizedDataset, passthrough_collate
from textcls.data.errors import DataError
from textcls.data.labels import encode_labels, label_order, stratified_split
from textcls.data.sources import read_table
from textcls.data.synthetic import make_demo_splits
from textcls.data.tokenizer import WordTokenizer

DEMO = "demo"


class TextDataModule(pl.LightningDataModule):
    """Text classification data from CSV / TSV / JSON Lines files, or the built-in synthetic demo.

    The tokenizer and the label names are learned from the training split only and travel in the checkpoint,
    so `validate`, `test` and `predict` from a checkpoint need no training data.

    Args:
        train_file: labelled training data (.csv, .tsv, .jsonl); unset with no `dataset` means the synthetic demo.
        val_file: labelled validation data; unset means a stratified `val_fraction` split of the training file.
        test_file: labelled test data for `textcls test` and the test after `fit`.
        predict_file: texts to classify with `textcls predict` (.txt: one text per line, or a table with `text_column`).
        dataset: a built-in dataset instead of files; "demo" is the synthetic task `make train` uses.
        text_column: column holding the text; a list of columns is joined with spaces.
        label_column: column holding the label (strings or integers).
        val_fraction: share of each class moved from the training file to validation when there is no `val_file`.
        split_seed: seed of that validation split.
        batch_size: training batch size (per device).
        eval_batch_size: batch size for validation, test and predict; unset means 2 x `batch_size`.
        max_length: texts are truncated to this many tokens.
        lowercase: lowercase texts before tokenizing.
        min_freq: words seen fewer times in the training split map to `<unk>`.
        max_vocab_size: keep at most this many tokens (including `<pad>` and `<unk>`); unset keeps all.
        tokenizer_file: use this tokenizer.json (or the tokenizer and labels of a textcls checkpoint) instead of
            building one from the training split.
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory (useful with a GPU).
    """

    def __init__(
        self,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        predict_file: str | None = None,
        dataset: str | None = None,
        text_column: str | list[str] = "text",
        label_column: str = "label",
        val_fraction: float = 0.1,
        split_seed: int = 42,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        max_length: int = 256,
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: int | None = 50_000,
        tokenizer_file: str | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        _check_setting(0 < val_fraction < 1, "val_fraction", val_fraction, "a number between 0 and 1, e.g. 0.1")
        _check_setting(batch_size > 0, "batch_size", batch_size, "a positive integer")
        _check_setting(eval_batch_size is None or eval_batch_size > 0, "eval_batch_size", eval_batch_size, "positive")
        _check_setting(max_length > 0, "max_length", max_length, "a positive number of tokens, e.g. 256")
        _check_setting(min_freq >= 1, "min_freq", min_freq, "1 or more")
        _check_setting(max_vocab_size is None or max_vocab_size > 2, "max_vocab_size", max_vocab_size, "more than 2")
        _check_setting(num_workers >= 0, "num_workers", num_workers, "0 or more")
        if dataset not in (None, DEMO):
            raise DataError(f"--data.dataset {dataset!r} is not a built-in dataset; use 'demo' or --data.train_file.")
        if dataset == DEMO and train_file:
            raise DataError("--data.dataset demo and --data.train_file exclude each other; give one of them.")
        self.train_file, self.val_file, self.test_file, self.predict_file = train_file, val_file, test_file, predict_file
        self.use_demo = dataset == DEMO or (train_file is None and tokenizer_file is None)
        self.text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
        self.label_column = label_column
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.max_length, self.lowercase, self.min_freq, self.max_vocab_size = max_length, lowercase, min_freq, max_vocab_size
        self.tokenizer_file = tokenizer_file
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.datasets: dict[str, TokenizedDataset] = {}
        self._vocabulary: tuple[WordTokenizer, list[str]] | None = None

    # ----- sizes the model needs (LightningCLI links them into the model at instantiation) -----

    @property
    def tokenizer(self) -> WordTokenizer:
        return self._load_vocabulary()[0]

    @property
    def label_names(self) -> list[str]:
        return self._load_vocabulary()[1]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    def _load_vocabulary(self) -> tuple[WordTokenizer, list[str]]:
        if self._vocabulary is None:
            self._vocabulary = self._read_vocabulary_file() if self.tokenizer_file else None
            if self._vocabulary is None or not self._vocabulary[1]:
                train = self._labelled_splits["train"]
                names = self._vocabulary[1] if self._vocabulary else label_order(train["label"])
                if len(names) < 2:
                    raise DataError(
                        f"the training data has only one class ({names[0]!r}); a classifier needs at least two."
                    )
                tokenizer = self._vocabulary[0] if self._vocabulary else WordTokenizer.train(
                    train["text"], self.lowercase, self.min_freq, self.max_vocab_size
                )
                self._vocabulary = (tokenizer, names)
                rank_zero_info(f"vocabulary: {tokenizer.vocab_size:,} tokens; labels: {', '.join(names)}")
        return self._vocabulary

    def _read_vocabulary_file(self) -> tuple[WordTokenizer, list[str]]:
        path = Path(str(self.tokenizer_file))
        if not path.is_file():
            raise DataError(f"--data.tokenizer_file '{path}' does not exist or is not a file.")
        if path.suffix == ".json":
            return WordTokenizer.from_json(path.read_text(encoding="utf-8"), str(path)), []
        state = load_checkpoint_state(path)
        return WordTokenizer.from_json(state["tokenizer"], str(path)), list(state["label_names"])

    # ----- Lightning hooks -----

    def setup(self, stage: str) -> None:
        wanted = {"fit": ["train", "validation"], "validate": ["validation"], "test": ["test"], "predict": ["predict"]}
        for split in wanted[stage]:
            if split not in self.datasets:
                self.datasets[split] = self._encode(split)

    def state_dict(self) -> dict[str, Any]:
        """Plain data only, so the checkpoint loads with `torch.load(weights_only=True)`."""
        return {"tokenizer": self.tokenizer.to_json(), "label_names": list(self.label_names)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._vocabulary = (WordTokenizer.from_json(state_dict["tokenizer"]), list(state_dict["label_names"]))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.eval_batch_size)

    # ----- reading and encoding -----

    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = self._encode(split)
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _encode(self, split: str) -> TokenizedDataset:
        if split == "predict":
            table = self._read_predict_table()
            labels = None
        else:
            if split not in self._labelled_splits:
                option = {"train": "train_file", "validation": "val_file", "test": "test_file"}[split]
                raise DataError(f"no {split} data: pass --data.{option}.")
            table = self._labelled_splits[split]
            labels = encode_labels(table["label"], self.label_names, self._source(split))
        ids = self.tokenizer.encode(table["text"], self.max_length)
        return TokenizedDataset(ids, labels, pad_id=self.pad_id)

    def _source(self, split: str) -> str:
        files = {"train": self.train_file, "validation": self.val_file or self.train_file, "test": self.test_file}
        return DEMO if self.use_demo else str(files.get(split))

    @cached_property
    def _labelled_splits(self) -> dict[str, pa.Table]:
        """Tables with columns text, label for train / validation (/ test when given)."""
        if self.use_demo:
            rank_zero_info("No --data.train_file given: using the built-in synthetic demo dataset.")
            return make_demo_splits(seed=0)
        if self.train_file is None:
            raise DataError("no training data: pass --data.train_file (or --data.dataset demo).")
        splits = {"train": self._read_labelled(self.train_file, "training file")}
        if self.val_file:
            splits["validation"] = self._read_labelled(self.val_file, "validation file")
        else:
            labels = splits["train"]["label"].combine_chunks()
            codes = pc.index_in(labels, value_set=pc.unique(labels)).to_numpy(zero_copy_only=False)
            train_rows, val_rows = stratified_split(codes, self.val_fraction, self.split_seed)
            splits["validation"] = splits["train"].take(val_rows)
            splits["train"] = splits["train"].take(train_rows)
        if self.test_file:
            splits["test"] = self._read_labelled(self.test_file, "test file")
        return splits

    def _read_labelled(self, path: str, what: str) -> pa.Table:
        table = read_table(path, what)
        text = self._text(table, path)
        if self.label_column not in table.column_names:
            raise DataError(
                f"{what} '{path}' has no label column {self.label_column!r}; columns found: "
                f"{', '.join(table.column_names)}. Set --data.label_column."
            )
        labels = pc.utf8_trim_whitespace(pc.fill_null(table[self.label_column], ""))
        missing = pc.equal(labels, "")
        if pc.any(missing).as_py():
            row = int(np.flatnonzero(missing.to_numpy(zero_copy_only=False))[0]) + 1
            raise DataError(
                f"{what} '{path}': {pc.sum(missing).as_py()} row(s) have no label (first: data row {row}); "
                "fill them in or remove them."
            )
        out = pa.table({"text": text, "label": labels})
        return self._drop_empty_texts(out, f"{what} '{path}'")

    def _read_predict_table(self) -> pa.Table:
        if not self.predict_file:
            raise DataError("nothing to predict: pass --data.predict_file (a .txt with one text per line, or a table).")
        table = read_table(self.predict_file, "predict file")
        if self.predict_file.endswith(".txt"):
            return table
        return pa.table({"text": self._text(table, self.predict_file)})

    def _text(self, table: pa.Table, path: str) -> pa.ChunkedArray:
        missing = [c for c in self.text_columns if c not in table.column_names]
        if missing:
            raise DataError(
                f"'{path}' has no text column {missing[0]!r}; columns found: {', '.join(table.column_names)}. "
                "Set --data.text_column."
            )
        columns = [pc.fill_null(table[c], "") for c in self.text_columns]
        return columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, " ")

    @staticmethod
    def _drop_empty_texts(table: pa.Table, source: str) -> pa.Table:
        blank = pc.equal(pc.utf8_trim_whitespace(table["text"]), "")
        count = pc.sum(blank).as_py() or 0
        if count == len(table):
            raise DataError(f"{source} has no rows with text; it needs at least one labelled text.")
        if count:
            rank_zero_warn(f"{source}: dropped {count} row(s) whose text is empty.")
            table = table.filter(pc.invert(blank))
        return table


def _check_setting(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise DataError(f"--data.{key} {value!r} is invalid: expected {expected}.")


def load_checkpoint_state(path: str | Path) -> dict[str, Any]:
    """The tokenizer and label names stored in a textcls checkpoint, with a clear error for anything else."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise DataError(f"'{path}' is not a readable checkpoint ({type(err).__name__}); pass a textcls .ckpt file.") from None
    state = checkpoint.get(TextDataModule.__qualname__) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not {"tokenizer", "label_names"} <= state.keys():
        raise DataError(f"'{path}' is not a textcls checkpoint (it has no tokenizer and label names).")
    return state
