"""TextDataModule: files, a hub dataset or the built-in demo -> cached tokenized Arrow splits -> padded batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, SequentialSampler

from textcls.data.batching import BucketBatchSampler, TokenizedDataset, passthrough_collate
from textcls.data.cache import default_cache_dir
from textcls.data.entries import DEMO, SplitEntries
from textcls.data.errors import DataError
from textcls.data.resumable import ResumableDataLoader, distributed_eval_sampler
from textcls.data.scan import EMPTY_TEXT, EmptyText
from textcls.data.sources import FORMATS, Format
from textcls.data.tokenizer import WordTokenizer


class TextDataModule(SplitEntries, pl.LightningDataModule):
    """Text classification data from local files, a Hugging Face hub dataset, or the built-in synthetic demo.

    The tokenizer and the label names are learned from the training split only and travel in the checkpoint,
    so `validate`, `test` and `predict` from a checkpoint need no training data. Tokenized splits are cached as
    memory-mapped Arrow files under `cache_dir`, keyed by the input files' content and every setting below that
    changes them; a second run with the same inputs skips reading and tokenizing.

    Args:
        train_file: labelled training data (.csv, .tsv, .jsonl, .parquet, .txt `label text` or fastText lines);
            unset with no `dataset` means the synthetic demo.
        val_file: labelled validation data; unset means a stratified `val_fraction` split of the training data.
        test_file: labelled test data for `textcls test` and the test after `fit`.
        predict_file: texts to classify with `textcls predict` (.txt: one text per line, or a table with `text_column`).
        dataset: "demo" (the synthetic task `make train` uses) or a Hugging Face hub dataset name, e.g. "ag_news".
        dataset_config: the hub dataset's configuration name, if it has several.
        train_split: hub split to train on.
        val_split: hub split to validate on; unset means a `val_fraction` split of `train_split`.
        test_split: hub split to test on; unset means no test data.
        format: file format of all data files (csv, tsv, jsonl, parquet, labeltext, fasttext, lines); unset means
            from the extension (.txt: fastText if the first line starts with `__label__`, else `label text`; a
            .txt predict file is always one text per line).
        text_column: column holding the text; a list of columns is joined with spaces.
        label_column: column holding the label (strings or integers), or a list of labels (multi-label).
        multi_label: any number of labels per text; unset: from the data (docs/multi-label.md).
        label_separator: separator of a text column's labels, e.g. "|" (multi-label).
        label_order: the classes in the order of the model's outputs (and of confusion matrices and per-class
            tables), e.g. [negative, neutral, positive]; it must name every training label. Unset: numeric order
            when every label is an integer, else alphabetical.
        empty_text: rows whose text is empty or blank: "drop" them with a warning, or "error".
        max_train_samples: train on a seeded random subset of at most this many rows (quick runs).
        max_eval_samples: validate and test on a seeded random subset of at most this many rows.
        val_fraction: share of each class moved from the training data to validation when there is no validation set.
        split_seed: seed of that validation split and of the `max_*_samples` subsets.
        shuffle_seed: seed of the training order (bucketing and shuffling, per epoch); unset: `split_seed`.
            The CLI sets it from `--seed_everything`.
        batch_size: training batch size (per device).
        eval_batch_size: batch size for validation, test and predict; unset means 2 x `batch_size`.
        max_length: texts are truncated to this many tokens.
        lowercase: lowercase texts before tokenizing.
        min_freq: words seen fewer times in the training split map to `<unk>`.
        max_vocab_size: keep at most this many tokens (including `<pad>` and `<unk>`); unset keeps all.
        tokenizer_file: use this tokenizer.json (or the tokenizer and labels of a textcls checkpoint) instead of
            building one from the training split.
        cache_dir: where tokenized splits are cached; unset means $XDG_CACHE_HOME/textcls (~/.cache/textcls).
        bucket: training batches of similar lengths (less padding), shuffled; false means plain shuffled batches.
        bucket_pool_batches: batches per length-sorting pool when `bucket` is on.
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
        dataset_config: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = None,
        format: Format | None = None,
        text_column: str | list[str] = "text",
        label_column: str = "label",
        multi_label: bool | None = None,
        label_separator: str | None = None,
        label_order: list[str] | None = None,
        empty_text: EmptyText = "drop",
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 42,
        shuffle_seed: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        max_length: int = 256,
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: int | None = 50_000,
        tokenizer_file: str | None = None,
        cache_dir: str | None = None,
        bucket: bool = True,
        bucket_pool_batches: int = 100,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        # Every setting as given, kept in the checkpoint: a resumed fit continues with the run's own data, and
        # test / predict / export read texts as training did without the user repeating a flag.
        # Not `shuffle_seed`: it is the run's seed, which the run's own config keeps.
        self.settings = {k: v for k, v in locals().items() if k not in ("self", "__class__", "shuffle_seed")}
        _check_setting(0 < val_fraction < 1, "val_fraction", val_fraction, "a number between 0 and 1, e.g. 0.1")
        _check_setting(batch_size > 0, "batch_size", batch_size, "a positive integer")
        _check_setting(eval_batch_size is None or eval_batch_size > 0, "eval_batch_size", eval_batch_size, "positive")
        _check_setting(max_length > 0, "max_length", max_length, "a positive number of tokens, e.g. 256")
        _check_setting(min_freq >= 1, "min_freq", min_freq, "1 or more")
        _check_setting(max_vocab_size is None or max_vocab_size > 2, "max_vocab_size", max_vocab_size, "more than 2")
        _check_setting(num_workers >= 0, "num_workers", num_workers, "0 or more")
        _check_setting(empty_text in EMPTY_TEXT, "empty_text", empty_text, " or ".join(EMPTY_TEXT))
        for key, value in (("max_train_samples", max_train_samples), ("max_eval_samples", max_eval_samples)):
            _check_setting(value is None or value > 0, key, value, "a positive number of rows")
        _check_setting(format is None or format in FORMATS, "format", format, f"one of {', '.join(FORMATS)}")
        _check_setting(
            label_order is None or (len(label_order) >= 2 and len(set(label_order)) == len(label_order)),
            "label_order",
            label_order,
            "two or more distinct label names",
        )
        _check_setting(label_separator != "", "label_separator", label_separator, 'one or more characters, e.g. "|"')
        if label_separator is not None and multi_label is False:
            raise DataError(
                f"--data.label_separator {label_separator!r} splits labels into sets (multi-label), but "
                "--data.multi_label is false; drop one of them."
            )
        _check_setting(bucket_pool_batches > 0, "bucket_pool_batches", bucket_pool_batches, "a positive integer")
        if dataset is not None and train_file:
            raise DataError(f"--data.dataset {dataset} and --data.train_file exclude each other; give one of them.")
        self.train_file, self.val_file, self.test_file, self.predict_file = (
            train_file,
            val_file,
            test_file,
            predict_file,
        )
        self.dataset, self.dataset_config = dataset, dataset_config
        self.train_split, self.val_split, self.test_split = train_split, val_split, test_split
        self.use_demo = dataset == DEMO or (dataset is None and train_file is None and tokenizer_file is None)
        self.format = format
        self.text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
        self.label_column, self.empty_text = label_column, empty_text
        self.multi_label_given, self.label_separator = multi_label, label_separator
        self.label_order = [str(name) for name in label_order] if label_order is not None else None
        self.max_train_samples, self.max_eval_samples = max_train_samples, max_eval_samples
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.shuffle_seed = split_seed if shuffle_seed is None else shuffle_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or 2 * batch_size
        self.max_length, self.lowercase, self.min_freq, self.max_vocab_size = (
            max_length,
            lowercase,
            min_freq,
            max_vocab_size,
        )
        self.tokenizer_file = tokenizer_file
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.bucket, self.bucket_pool_batches = bucket, bucket_pool_batches
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.datasets: dict[str, TokenizedDataset] = {}
        self._vocabulary: tuple[WordTokenizer, list[str]] | None = None
        self._multi_label: bool | None = None  # resolved with the vocabulary
        self._entries: dict[str, Path] = {}
        self._vocab_entry: Path | None = None  # the training entry the vocabulary was learned in, if any
        self.built_entries: list[str] = []  # cache keys this process built (the rest were reused)

    @property
    def has_test_data(self) -> bool:
        return bool(self.test_file) or self.use_demo or (self.dataset not in (None, DEMO) and bool(self.test_split))

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
    def multi_label(self) -> bool:
        """Whether the task is multi-label: as given, from the checkpoint the vocabulary came from, or as the
        training data showed."""
        self._load_vocabulary()
        return bool(self._multi_label)

    def label_counts(self) -> tuple[np.ndarray, int]:
        """(how many training rows have each label / class, in `label_names` order; the number of training rows)."""
        dataset = self._dataset("train")
        return dataset.label_counts(self.num_classes), len(dataset)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    # ----- Lightning hooks -----

    def prepare_data(self) -> None:
        """Build the cache entries once per node before the ranks' `setup`; ranks that race still build only once."""
        self._load_vocabulary()

    def setup(self, stage: str) -> None:
        # fit also checks a given test set, so that a bad test file fails before training rather than after it.
        fit = ["train", "validation", "test"] if self.has_test_data else ["train", "validation"]
        wanted = {"fit": fit, "validate": ["validation"], "test": ["test"], "predict": ["predict"]}
        for split in wanted[stage]:
            self._dataset(split)

    def state_dict(self) -> dict[str, Any]:
        """Plain data only, so the checkpoint loads with `torch.load(weights_only=True)`. `max_length` lets
        prediction and export truncate texts as training did; `settings` are this DataModule's arguments."""
        settings = dict(self.settings, dataset=DEMO if self.use_demo else self.dataset)
        return {
            "tokenizer": self.tokenizer.to_json(),
            "label_names": list(self.label_names),
            "max_length": self.max_length,
            "settings": settings,
            "multi_label": self.multi_label,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        vocabulary = (WordTokenizer.from_json(state_dict["tokenizer"]), list(state_dict["label_names"]))
        self._multi_label = bool(state_dict.get("multi_label", False))
        if self._vocabulary is None or vocabulary[0].vocab != self._vocabulary[0].vocab:
            self.datasets, self._vocab_entry = {}, None  # encoded with another vocabulary
        self._vocabulary = vocabulary

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        # Also without bucketing, the order is a function of (seed, epoch) rather than of the global RNG (a plain
        # shuffle=True draws from it), so a mid-epoch resume continues with the right batch either way.
        sampler = BucketBatchSampler(
            SequentialSampler(dataset),
            batch_size=self.batch_size,
            drop_last=False,
            lengths=dataset.lengths,
            pool_batches=self.bucket_pool_batches,
            seed=self.shuffle_seed,
            by_length=self.bucket,
        )
        return self._loader(dataset, batch_sampler=sampler)

    def labelled_train_batches(self, batch_size: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(token ids, labels) of the whole training split in file order, whatever the rank: for statistics a model
        counts before training (textcls.models.MLP's nb_weighting)."""
        dataset = self._dataset("train")
        for start in range(0, len(dataset), batch_size):
            batch = dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))
            yield batch["input_ids"], batch["labels"]

    def predict_columns(self, names: list[str]) -> pa.Table:
        """Columns `names` of the predict file as read (strings), one row per predicted text in input order: for
        output that carries input columns (an id) through. Read from the file, not the cache, which keeps token ids
        only."""
        source = self._source("predict")
        if source is None:
            raise DataError("no predict data: pass --data.predict_file.")
        available = source.column_names()
        missing = [name for name in names if name not in available]
        if missing:
            raise DataError(
                f"{source.name} has no column {missing[0]!r} (--predictions.keep_columns); its columns are "
                f"{', '.join(available)}: keep some of those."
            )
        return pa.Table.from_batches([batch.select(names) for batch in source.batches()])

    def val_dataloader(self) -> DataLoader:
        dataset = self._dataset("validation")
        # Under DDP each rank evaluates a disjoint, unpadded part: every example counted once.
        return self._loader(dataset, batch_size=self.eval_batch_size, sampler=distributed_eval_sampler(dataset))

    def test_dataloader(self) -> DataLoader:
        dataset = self._dataset("test")
        return self._loader(dataset, batch_size=self.eval_batch_size, sampler=distributed_eval_sampler(dataset))

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("predict"), batch_size=self.eval_batch_size)

    def _loader(self, dataset: TokenizedDataset, **kwargs: Any) -> DataLoader:
        # Resumable: a run restored from a mid-epoch checkpoint continues with the next batch of the epoch.
        return ResumableDataLoader(
            dataset,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def _dataset(self, split: str) -> TokenizedDataset:
        if split not in self.datasets:
            self.datasets[split] = TokenizedDataset(self._split_file(split), pad_id=self.pad_id)
        return self.datasets[split]


def _check_setting(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise DataError(f"--data.{key} {value!r} is invalid: expected {expected}.")
