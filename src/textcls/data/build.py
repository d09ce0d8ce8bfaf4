"""Streaming passes from a `Source` to tokenized Arrow IPC files: check, split, count the vocabulary, encode.

Every pass reads the source batch by batch; what is kept across batches is a few bytes per row (a keep flag, a
label code, a split flag), never the texts. Errors are raised before the cache entry is published.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pytorch_lightning.utilities import rank_zero_info

from textcls.data.errors import DataError
from textcls.data.labels import keep_at_most, label_order, stratified_val_mask
from textcls.data.labelsets import LabelMode, LabelSets
from textcls.data.scan import Columns, Scan, check_given_order, codes_for, scan, texts_and_labels
from textcls.data.sources import Source
from textcls.data.tokenizer import VocabCounter, WordTokenizer


@dataclass
class TrainSettings:
    """Everything that decides the content of a training entry (also the inputs of its cache key)."""

    columns: Columns
    empty_text: str
    max_length: int
    lowercase: bool
    min_freq: int
    max_vocab_size: int | None
    val_fraction: float | None  # None: no validation split carved out of the training data
    split_seed: int
    max_train_samples: int | None
    max_eval_samples: int | None
    label_mode: LabelMode


def build_train_entry(
    out: Path,
    source: Source,
    settings: TrainSettings,
    tokenizer: WordTokenizer | None = None,
    label_names: list[str] | None = None,
) -> None:
    """train.arrow (+ validation.arrow when carving), tokenizer.json and meta.json into `out`."""
    # One pool per file: threads that exit abandon their allocator heap, so they live as long as the build.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        _build_train_entry(out, source, settings, tokenizer, label_names, pool)


def _build_train_entry(
    out: Path,
    source: Source,
    settings: TrainSettings,
    tokenizer: WordTokenizer | None,
    label_names: list[str] | None,
    pool: ThreadPoolExecutor,
) -> None:
    single_pass = tokenizer is None and settings.val_fraction is None and settings.max_train_samples is None
    counter = VocabCounter(settings.lowercase, pool) if single_pass else None
    rank_zero_info(f"Reading {source.name} ...")
    found = scan(source, settings.columns, settings.empty_text, counter, settings.label_mode)
    if label_names:
        check_given_order(found, label_names, source)
    names = label_names or label_order(pa.array(list(found.seen), pa.string()))
    codes = codes_for(found, names, source)
    found.code_parts.clear()  # `codes` holds them now; at 10 M rows each copy is 40 MB
    _check_two_labels(codes, names, source)
    # 1 = train, 2 = validation, 0 = left out by max_*_samples; one byte per kept row.
    assign = np.ones(len(codes), dtype=np.int8)
    if settings.val_fraction is not None:
        strata = codes.strata(len(names)) if isinstance(codes, LabelSets) else codes
        assign[stratified_val_mask(strata, settings.val_fraction, settings.split_seed)] = 2
    train_mask = keep_at_most(assign == 1, settings.max_train_samples, settings.split_seed)
    val_mask = keep_at_most(assign == 2, settings.max_eval_samples, settings.split_seed + 1)
    assign[:] = 0
    assign[train_mask], assign[val_mask] = 1, 2
    del train_mask, val_mask
    if tokenizer is None:
        if counter is None:
            counter = VocabCounter(settings.lowercase, pool)
            for text, part in _kept_texts(source, settings.columns, found, assign):
                counter.update(text.filter(pa.array(part == 1)))
        tokenizer = counter.build(settings.min_freq, settings.max_vocab_size)
    splits = {1: "train", 2: "validation"} if settings.val_fraction is not None else {1: "train"}
    num_labels = len(names) if found.multi else None
    writers = {k: _Writer(out / f"{name}.arrow", labelled=True, num_labels=num_labels) for k, name in splits.items()}
    offset = 0
    for text, part in _kept_texts(source, settings.columns, found, assign):
        part_codes = codes[offset : offset + len(part)]
        offset += len(part)
        for value, writer in writers.items():
            selected = part == value
            if selected.any():
                ids = tokenizer.encode(text.filter(pa.array(selected)), settings.max_length, pool)
                writer.write(ids, part_codes[selected])
    counts = {name: writer.close() for name, writer in zip(splits.values(), writers.values(), strict=True)}
    (out / "tokenizer.json").write_text(tokenizer.to_json(), encoding="utf-8")
    meta = {"label_names": names, "rows": counts, "dropped_empty": found.dropped, "multi_label": found.multi}
    (out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def _check_two_labels(codes: np.ndarray | LabelSets, names: list[str], source: Source) -> None:
    if isinstance(codes, LabelSets):
        if len(names) < 2:
            raise DataError(
                f"{source.name}: the training data names {len(names)} label(s) ({', '.join(map(repr, names))}); "
                "a multi-label classifier needs at least two."
            )
        return
    present = np.unique(codes)
    if len(present) < 2:
        raise DataError(
            f"{source.name}: the training data has only one class ({names[int(present[0])]!r}); "
            "a classifier needs at least two."
        )


def _kept_texts(
    source: Source, columns: Columns, found: Scan, assign: np.ndarray
) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """(kept texts, their split flags) per batch, re-reading the source; the scan's keep flags align batches."""
    start = 0
    for (_, text, _), keep in zip(texts_and_labels(source, columns), found.keep_parts, strict=True):
        kept = text.filter(pa.array(keep))
        yield kept, assign[start : start + len(kept)]
        start += len(kept)


def build_eval_entry(
    out: Path,
    source: Source,
    columns: Columns,
    tokenizer: WordTokenizer,
    label_names: list[str] | None,
    empty_text: str,
    max_length: int,
    max_rows: int | None,
    seed: int,
    label_mode: LabelMode | None = None,
) -> None:
    """split.arrow (+ meta.json) for a validation / test file (labelled) or a predict file (`label_names` None).

    Predict rows are never dropped or sampled: the output must line up with the input, one prediction per row.
    """
    multi = label_mode is not None and bool(label_mode.multi)
    num_labels = len(label_names) if multi and label_names is not None else None
    writer = _Writer(out / "split.arrow", labelled=label_names is not None, num_labels=num_labels)
    dropped = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        if label_names is None:
            for _, text, _ in texts_and_labels(source, columns):
                writer.write(tokenizer.encode(text, max_length, pool), None)
        else:
            found = scan(source, columns, empty_text, mode=label_mode)
            codes = codes_for(found, label_names, source)
            chosen = keep_at_most(np.ones(len(codes), dtype=bool), max_rows, seed).astype(np.int8)
            offset = 0
            for text, part in _kept_texts(source, columns, found, chosen):
                selected = part == 1
                part_codes = codes[offset : offset + len(part)]
                offset += len(part)
                if selected.any():
                    writer.write(
                        tokenizer.encode(text.filter(pa.array(selected)), max_length, pool), part_codes[selected]
                    )
            dropped = found.dropped
    rows = writer.close()
    (out / "meta.json").write_text(json.dumps({"rows": rows, "dropped_empty": dropped}), encoding="utf-8")


class _Writer:
    """An Arrow IPC file of `ids` (list<int32>) and `label` (int32) record batches; multi-label (`num_labels` set):
    `labels` (list<int32>), with the number of labels in the schema's metadata."""

    def __init__(self, path: Path, labelled: bool, num_labels: int | None = None) -> None:
        fields = [pa.field("ids", pa.list_(pa.int32()))]
        metadata = None
        if labelled and num_labels is not None:
            fields.append(pa.field("labels", pa.list_(pa.int32())))
            metadata = {"num_labels": str(num_labels)}
        elif labelled:
            fields.append(pa.field("label", pa.int32()))
        self.schema = pa.schema(fields, metadata=metadata)
        self.writer = pa.ipc.new_file(str(path), self.schema)
        self.rows = 0

    def write(self, ids: pa.ListArray, labels: np.ndarray | LabelSets | None) -> None:
        if isinstance(labels, LabelSets):
            columns = [ids, labels.to_arrow()]
        else:
            columns = [ids] if labels is None else [ids, pa.array(labels.astype(np.int32), pa.int32())]
        self.writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self.rows += len(ids)

    def close(self) -> int:
        self.writer.close()
        return self.rows
