"""Which sources and cache entries a TextDataModule's settings name, built (or reused) on first use.

`SplitEntries` is the file side of `TextDataModule`: its attributes are the DataModule's arguments.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from textcls.checkpoint import load_checkpoint_state
from textcls.data.build import TrainSettings, build_eval_entry, build_train_entry
from textcls.data.cache import cache_key, get_or_build
from textcls.data.errors import DataError
from textcls.data.labelsets import LabelMode
from textcls.data.scan import Columns, warn_dropped
from textcls.data.sources import FileSource, Source, TableSource
from textcls.data.synthetic import make_demo_splits
from textcls.data.tokenizer import WordTokenizer

DEMO = "demo"
SPLIT_OPTIONS = {"train": "train_file", "validation": "val_file", "test": "test_file", "predict": "predict_file"}


class SplitEntries:
    """The vocabulary and the tokenized Arrow file of each split, from the sources the settings name."""

    train_file: str | None
    val_file: str | None
    test_file: str | None
    predict_file: str | None
    dataset: str | None
    dataset_config: str | None
    train_split: str
    val_split: str | None
    test_split: str | None
    use_demo: bool
    format: str | None
    text_columns: list[str]
    label_column: str
    label_order: list[str] | None
    multi_label_given: bool | None
    label_separator: str | None
    _multi_label: bool | None
    empty_text: str
    max_train_samples: int | None
    max_eval_samples: int | None
    val_fraction: float
    split_seed: int
    max_length: int
    lowercase: bool
    min_freq: int
    max_vocab_size: int | None
    tokenizer_file: str | None
    cache_dir: Path
    built_entries: list[str]
    _vocabulary: tuple[WordTokenizer, list[str]] | None
    _entries: dict[str, Path]
    _vocab_entry: Path | None

    def _load_vocabulary(self) -> tuple[WordTokenizer, list[str]]:
        if self._vocabulary is None:
            tokenizer, names = self._read_vocabulary_file() if self.tokenizer_file else (None, [])
            if names:
                self._check_task(self._multi_label)
            if names and self.label_order is not None and names != self.label_order:
                raise DataError(
                    f"--data.label_order {self.label_order} differs from the label order of "
                    f"--data.tokenizer_file {self.tokenizer_file} ({names}); a trained model's outputs keep the "
                    "order it was trained with, so drop --data.label_order."
                )
            if tokenizer is not None and names:
                self._vocabulary = (tokenizer, names)
            else:
                entry = self._train_entry(tokenizer, names or self.label_order or [])
                self._vocab_entry = entry
                meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
                self._vocabulary = (
                    WordTokenizer.from_json((entry / "tokenizer.json").read_text(encoding="utf-8")),
                    meta["label_names"],
                )
                self._multi_label = bool(meta.get("multi_label", False))
            tokenizer, names = self._vocabulary
            rank_zero_info(f"vocabulary: {tokenizer.vocab_size:,} tokens; labels: {', '.join(names)}")
        return self._vocabulary

    def _read_vocabulary_file(self) -> tuple[WordTokenizer, list[str]]:
        path = Path(str(self.tokenizer_file))
        if not path.is_file():
            raise DataError(f"--data.tokenizer_file '{path}' does not exist or is not a file.")
        if path.suffix == ".json":
            return WordTokenizer.from_json(path.read_text(encoding="utf-8"), str(path)), []
        state = load_checkpoint_state(path)
        self._multi_label = bool(state.get("multi_label", False))
        return WordTokenizer.from_json(state["tokenizer"], str(path)), list(state["label_names"])

    def _check_task(self, multi: bool | None) -> None:
        """A multi-label checkpoint's vocabulary cannot train or read single-label data, and the reverse."""
        given = self.multi_label_given if self.label_separator is None else True
        if given is not None and multi is not None and given != multi:
            kind = "multi-label" if multi else "single-label"
            raise DataError(
                f"--data.tokenizer_file {self.tokenizer_file} is a {kind} checkpoint, but "
                f"{'--data.label_separator' if self.label_separator else '--data.multi_label ' + str(given).lower()} "
                f"asks for {'multi-label' if given else 'single-label'} data; give data of the checkpoint's kind."
            )

    def _label_mode(self) -> LabelMode:
        """How this DataModule reads labels: the task as known (a checkpoint's, or the training data's once read),
        else as given."""
        multi = self._multi_label if self._multi_label is not None else self.multi_label_given
        if multi is None and self.label_separator is not None:
            multi = True
        strings_are_sets = self.multi_label_given is True or self.label_separator is not None
        return LabelMode(multi, self.label_separator, strings_are_sets)

    def _split_file(self, split: str) -> Path:
        if split == "train" or (split == "validation" and self._source("validation") is None):
            if split == "validation" and self._train_source is None:
                raise DataError("no validation data: pass --data.val_file (or --data.train_file to split it from).")
            vocabulary = self._load_vocabulary()
            entry = self._vocab_entry or self._train_entry(*vocabulary)
            return entry / f"{split}.arrow"
        source = self._source(split)
        if source is None:
            hub = split == "test" and self.dataset not in (None, DEMO)
            option = "data.test_split" if hub else f"data.{SPLIT_OPTIONS[split]}"
            raise DataError(f"no {split} data: pass --{option}.")
        return self._eval_entry(split, source) / "split.arrow"

    @cached_property
    def _train_source(self) -> Source | None:
        if self.use_demo:
            rank_zero_info("No --data.train_file given: using the built-in synthetic demo dataset.")
            return _demo_source("train")
        if self.dataset is not None:
            from textcls.data.hub import load_hub_split

            return load_hub_split(self.dataset, self.dataset_config, self.train_split, self.label_column)
        if self.train_file is None:
            return None
        return FileSource(self.train_file, "training file", self.format, True, self.text_columns[0], self.label_column)

    def _source(self, split: str) -> Source | None:
        if split == "predict":
            if not self.predict_file:
                return None
            # A .txt predict file is one text per line whatever --data.format says for the labelled files.
            fmt = None if self.predict_file.lower().endswith(".txt") else self.format
            return FileSource(self.predict_file, "predict file", fmt, False, self.text_columns[0], self.label_column)
        if self.use_demo:
            return _demo_source(split) if split != "train" else self._train_source
        path = {"train": self.train_file, "validation": self.val_file, "test": self.test_file}[split]
        if self.dataset is not None and not path:  # a val_file / test_file given with a hub dataset takes precedence
            hub_split = {"train": self.train_split, "validation": self.val_split, "test": self.test_split}[split]
            if hub_split is None:
                return None
            from textcls.data.hub import load_hub_split

            return load_hub_split(self.dataset, self.dataset_config, hub_split, self.label_column)
        if not path:
            return None
        what = {"train": "training file", "validation": "validation file", "test": "test file"}[split]
        source = FileSource(path, what, self.format, True, self.text_columns[0], self.label_column)
        self._check_same_columns(source)
        return source

    def _check_same_columns(self, source: FileSource) -> None:
        train = self._train_source
        if not isinstance(train, FileSource) or source.path == train.path:
            return
        ours, theirs = source.column_names(), train.column_names()
        if sorted(ours) != sorted(theirs):
            raise DataError(
                f"{source.name} has columns {', '.join(ours)} but the training file has {', '.join(theirs)}; "
                "give every labelled file the same columns."
            )

    def _columns(self, source: Source, labelled: bool) -> Columns:
        if isinstance(source, _DemoSource):
            return Columns(["text"], "label" if labelled else None)
        return Columns(self.text_columns, self.label_column if labelled else None)

    def _train_entry(self, tokenizer: WordTokenizer | None, names: list[str]) -> Path:
        source = self._train_source
        if source is None:
            raise DataError("no training data: pass --data.train_file, --data.dataset, or a --data.tokenizer_file.")
        carve = self._source("validation") is None
        settings = TrainSettings(
            columns=self._columns(source, labelled=True),
            empty_text=self.empty_text,
            max_length=self.max_length,
            lowercase=self.lowercase,
            min_freq=self.min_freq,
            max_vocab_size=self.max_vocab_size,
            val_fraction=self.val_fraction if carve else None,
            split_seed=self.split_seed,
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples if carve else None,
            label_mode=self._label_mode(),
        )
        inputs = {
            "source": source.fingerprint(),
            "settings": settings.__dict__
            | {"columns": settings.columns.__dict__, "label_mode": settings.label_mode.__dict__},
            "tokenizer": _digest(tokenizer.to_json()) if tokenizer else None,
            "labels": names or None,
        }
        return self._entry(
            "train", inputs, source, lambda out: build_train_entry(out, source, settings, tokenizer, names or None)
        )

    def _eval_entry(self, split: str, source: Source) -> Path:
        tokenizer, names = self._load_vocabulary()
        labelled = split != "predict"
        columns = self._columns(source, labelled)
        max_rows = self.max_eval_samples if labelled else None
        mode = self._label_mode()
        inputs = {
            "source": source.fingerprint(),
            "columns": columns.__dict__,
            "empty_text": self.empty_text,
            "max_length": self.max_length,
            "max_rows": max_rows,
            "seed": self.split_seed,
            "tokenizer": _digest(tokenizer.to_json()),
            "labels": names if labelled else None,
            "label_mode": mode.__dict__ if labelled else None,
        }
        return self._entry(
            split,
            inputs,
            source,
            lambda out: build_eval_entry(
                out,
                source,
                columns,
                tokenizer,
                names if labelled else None,
                self.empty_text,
                self.max_length,
                max_rows,
                self.split_seed,
                mode,
            ),
        )

    def _entry(self, kind: str, inputs: dict[str, Any], source: Source, build: Any) -> Path:
        key = cache_key(kind, inputs)
        if key in self._entries:
            return self._entries[key]
        entry, built = get_or_build(self.cache_dir, key, build)
        if built:
            self.built_entries.append(key)
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        rank_zero_info(f"{'built' if built else 'reusing'} cached {kind} data for {source.name}: {entry}")
        if message := warn_dropped(source.name, meta.get("dropped_empty", 0)):
            rank_zero_warn(message)
        self._entries[key] = entry
        return entry


class _DemoSource(TableSource):
    """One split of the synthetic demo, generated only when a cache entry has to be built."""

    def __init__(self, split: str) -> None:
        self.split = split
        self.name = f"demo dataset ({split})"
        self._fingerprint = f"demo:v1:seed0:{split}"

    @cached_property
    def table(self) -> pa.Table:
        return make_demo_splits(seed=0)[self.split]


def _demo_source(split: str) -> _DemoSource:
    return _DemoSource(split)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
