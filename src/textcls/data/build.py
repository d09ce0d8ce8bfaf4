"""Streaming passes from a `Source` to tokenized Arrow IPC files: check, split, count the vocabulary, encode.

Every pass reads the source batch by batch; what is kept across batches is a few bytes per row (a keep flag, a
label code, a split flag), never the texts. Errors are raised before the cache entry is published.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from textcls.data.errors import DataError
from textcls.data.labels import keep_at_most, label_order, stratified_val_mask
from textcls.data.sources import Source
from textcls.data.tokenizer import VocabCounter, WordTokenizer

EmptyText = Literal["drop", "error"]
EMPTY_TEXT: tuple[str, ...] = get_args(EmptyText)


@dataclass
class Columns:
    """Which columns hold the text (joined with spaces when several) and the label (None: unlabelled)."""

    text: list[str]
    label: str | None


@dataclass
class Scan:
    """What one pass over a labelled source learned: which rows are kept, and their labels as codes into `seen`."""

    rows: int = 0
    keep_parts: list[np.ndarray] = field(default_factory=list)
    code_parts: list[np.ndarray] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.rows - sum(int(k.sum()) for k in self.keep_parts)


def texts_and_labels(source: Source, columns: Columns) -> Iterator[tuple[int, pa.Array, pa.Array | None]]:
    """(first row number, text, label) per batch, after checking the columns; fails on a file without rows."""
    first_row = 1
    for batch in source.batches():
        names = batch.schema.names
        missing = [c for c in columns.text if c not in names]
        if missing:
            raise DataError(
                f"{source.name} has no text column {missing[0]!r}; columns found: {', '.join(names) or 'none'}. "
                f"Set --data.text_column{_delimiter_hint(source, names)}."
            )
        if columns.label is not None and columns.label not in names:
            raise DataError(
                f"{source.name} has no label column {columns.label!r}; columns found: {', '.join(names)}. "
                f"Set --data.label_column{_delimiter_hint(source, names)}."
            )
        for name in [*columns.text, *([columns.label] if columns.label is not None else [])]:
            kind = batch.schema.field(name).type
            if not pa.types.is_string(kind):
                raise DataError(
                    f"{source.name}: column {name!r} holds {kind} values, not text; use a column of strings "
                    "(or numbers) for the text and the label."
                )
        parts = [pc.fill_null(batch.column(c), "") for c in columns.text]
        text = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")
        label = None
        if columns.label is not None:
            label = pc.utf8_trim_whitespace(pc.fill_null(batch.column(columns.label), ""))
        if len(batch):
            yield first_row, text, label
        first_row += len(batch)
    if first_row == 1:
        raise DataError(f"{source.name} has a header but no data rows; add at least one labelled row.")


def _delimiter_hint(source: Source, names: list[str]) -> str:
    """A CSV header read as one column that contains another separator was written with that separator."""
    if len(names) != 1 or getattr(source, "fmt", None) != "csv":
        return ""
    for separator, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if separator in names[0]:
            advice = "name the file .tsv or pass --data.format tsv" if separator == "\t" else "convert it to commas"
            return f" (the header looks separated by {word}, but the file is read as comma-separated: {advice})"
    return ""


def scan(source: Source, columns: Columns, empty_text: str, counter: VocabCounter | None = None) -> Scan:
    """Find blank texts and missing labels, and code the labels; optionally count the vocabulary of kept rows."""
    result = Scan()
    for first_row, text, label in texts_and_labels(source, columns):
        blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
        if empty_text == "error" and blank.any():
            row = first_row + int(np.flatnonzero(blank)[0])
            raise DataError(
                f"{source.name}, {source.row_word} {row}: the text is empty; fill it in or remove the row "
                "(or use --data.empty_text drop to skip such rows)."
            )
        keep = ~blank
        result.rows += len(keep)
        result.keep_parts.append(keep)
        assert label is not None, "scan reads labelled sources only"
        kept_labels = label.filter(pa.array(keep))
        no_label = pc.equal(kept_labels, "").to_numpy(zero_copy_only=False)
        if no_label.any():
            row = first_row + int(np.flatnonzero(keep)[np.flatnonzero(no_label)[0]])
            raise DataError(
                f"{source.name}, {source.row_word} {row}: the label is missing; fill in the "
                f"{columns.label!r} value of every row, or remove those rows."
            )
        encoded = pc.dictionary_encode(kept_labels)
        to_code = np.array([result.seen.setdefault(v, len(result.seen)) for v in encoded.dictionary.to_pylist()])
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        result.code_parts.append(to_code[indices].astype(np.int32) if len(indices) else indices.astype(np.int32))
        if counter is not None:
            counter.update(text.filter(pa.array(keep)))
    if not any(k.any() for k in result.keep_parts):
        raise DataError(f"{source.name} has no rows with text; it needs at least one labelled text.")
    return result


def codes_for(scan_result: Scan, names: list[str], source: Source) -> np.ndarray:
    """The scan's label codes re-mapped to indices into `names`; labels outside `names` are an error."""
    unknown = [label for label in scan_result.seen if label not in names]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise DataError(
            f"{source.name}: {len(unknown)} label(s) never seen in the training data: {shown}. "
            f"Known labels: {', '.join(names[:20])}. Fix the labels or add examples of them to the training data."
        )
    lookup = np.array([names.index(label) for label in scan_result.seen], dtype=np.int32)
    codes = np.concatenate(scan_result.code_parts) if scan_result.code_parts else np.zeros(0, np.int32)
    return lookup[codes] if len(lookup) else codes


def _check_given_order(scan_result: Scan, names: list[str], source: Source) -> None:
    """A given label order (--data.label_order, or a checkpoint's labels) must name every training label."""
    missing = [label for label in scan_result.seen if label not in names]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{source.name}: label(s) {shown} are missing from the given label order ({', '.join(names[:20])}); "
            "list every class in --data.label_order (a checkpoint's order cannot grow)."
        )
    unused = [name for name in names if name not in scan_result.seen]
    if unused:
        rank_zero_warn(f"{source.name}: no training example of label(s) {', '.join(map(repr, unused))}.")


def warn_dropped(source_name: str, dropped: int) -> str | None:
    if dropped:
        return f"{source_name}: dropped {dropped} row(s) whose text is empty (--data.empty_text error fails instead)."
    return None


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
    found = scan(source, settings.columns, settings.empty_text, counter)
    if label_names:
        _check_given_order(found, label_names, source)
    names = label_names or label_order(pa.array(list(found.seen), pa.string()))
    codes = codes_for(found, names, source)
    found.code_parts.clear()  # `codes` holds them now; at 10 M rows each copy is 40 MB
    present = np.unique(codes)
    if len(present) < 2:
        raise DataError(
            f"{source.name}: the training data has only one class ({names[int(present[0])]!r}); "
            "a classifier needs at least two."
        )
    # 1 = train, 2 = validation, 0 = left out by max_*_samples; one byte per kept row.
    assign = np.ones(len(codes), dtype=np.int8)
    if settings.val_fraction is not None:
        assign[stratified_val_mask(codes, settings.val_fraction, settings.split_seed)] = 2
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
    writers = {k: _Writer(out / f"{name}.arrow", labelled=True) for k, name in splits.items()}
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
    meta = {"label_names": names, "rows": counts, "dropped_empty": found.dropped}
    (out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


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
) -> None:
    """split.arrow (+ meta.json) for a validation / test file (labelled) or a predict file (`label_names` None).

    Predict rows are never dropped or sampled: the output must line up with the input, one prediction per row.
    """
    writer = _Writer(out / "split.arrow", labelled=label_names is not None)
    dropped = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        if label_names is None:
            for _, text, _ in texts_and_labels(source, columns):
                writer.write(tokenizer.encode(text, max_length, pool), None)
        else:
            found = scan(source, columns, empty_text)
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
    """An Arrow IPC file of `ids` (list<int32>) and `label` (int32) record batches."""

    def __init__(self, path: Path, labelled: bool) -> None:
        fields = [pa.field("ids", pa.list_(pa.int32()))]
        if labelled:
            fields.append(pa.field("label", pa.int32()))
        self.schema = pa.schema(fields)
        self.writer = pa.ipc.new_file(str(path), self.schema)
        self.rows = 0

    def write(self, ids: pa.ListArray, labels: np.ndarray | None) -> None:
        columns = [ids] if labels is None else [ids, pa.array(labels.astype(np.int32), pa.int32())]
        self.writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self.rows += len(ids)

    def close(self) -> int:
        self.writer.close()
        return self.rows
