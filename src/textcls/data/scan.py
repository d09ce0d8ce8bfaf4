"""The first streaming pass over a labelled `Source`: which rows are kept, their label codes, the labels seen.

Also the checks that need the whole file (label order, empty texts); what is kept is a few bytes per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pytorch_lightning.utilities import rank_zero_warn

from textcls.data.errors import DataError
from textcls.data.labelsets import LabelMode, LabelSets, code_lists, from_pairs, label_lists
from textcls.data.sources import Source
from textcls.data.tokenizer import VocabCounter

EmptyText = Literal["drop", "error"]
EMPTY_TEXT: tuple[str, ...] = get_args(EmptyText)


@dataclass
class Columns:
    """Which columns hold the text (joined with spaces when several) and the label (None: unlabelled)."""

    text: list[str]
    label: str | None


@dataclass
class Scan:
    """What one pass over a labelled source learned: which rows are kept, and their labels as codes into `seen`
    (an array of codes per batch, or `LabelSets` per batch when `multi`)."""

    rows: int = 0
    keep_parts: list[np.ndarray] = field(default_factory=list)
    code_parts: list[Any] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    multi: bool = False

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
            if name == columns.label and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                continue  # a multi-label column; its values are checked by labelsets.label_lists
            if not pa.types.is_string(kind):
                raise DataError(
                    f"{source.name}: column {name!r} holds {kind} values, not text; use a column of strings "
                    "(or numbers) for the text and the label."
                )
        parts = [pc.fill_null(batch.column(c), "") for c in columns.text]
        text = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")
        label = None
        if columns.label is not None:
            label = batch.column(columns.label)
            if pa.types.is_string(label.type):
                label = pc.utf8_trim_whitespace(pc.fill_null(label, ""))
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


def scan(
    source: Source,
    columns: Columns,
    empty_text: str,
    counter: VocabCounter | None = None,
    mode: LabelMode | None = None,
) -> Scan:
    """Find blank texts and missing labels, and code the labels; optionally count the vocabulary of kept rows.
    `mode` says how labels are read (single-label strings by default); `Scan.multi` is the mode found."""
    mode = mode or LabelMode(multi=False)
    result = Scan(multi=bool(mode.multi))
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
        where = f"{source.name} (column {columns.label!r})"
        lists = label_lists(
            kept_labels,
            LabelMode(result.multi or mode.multi, mode.separator, mode.strings_are_sets),
            getattr(source, "fmt", None),
            where,
        )
        if lists is not None:
            if not result.multi:  # the first multi-label batch: the earlier ones had one label per row
                result.multi = True
                result.code_parts = [_one_each(codes) for codes in result.code_parts]
            rows = first_row + np.flatnonzero(keep)
            result.code_parts.append(code_lists(lists, result.seen, source.name, source.row_word, rows))
            if counter is not None:
                counter.update(text.filter(pa.array(keep)))
            continue
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


def _one_each(codes: np.ndarray) -> LabelSets:
    return LabelSets(np.arange(len(codes) + 1, dtype=np.int64), codes)


def codes_for(scan_result: Scan, names: list[str], source: Source) -> Any:
    """The scan's label codes re-mapped to indices into `names` (an array, or `LabelSets` when multi-label); labels
    outside `names` are an error."""
    unknown = [label for label in scan_result.seen if label not in names]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise DataError(
            f"{source.name}: {len(unknown)} label(s) never seen in the training data: {shown}. "
            f"Known labels: {', '.join(names[:20])}. Fix the labels or add examples of them to the training data."
        )
    lookup = np.array([names.index(label) for label in scan_result.seen], dtype=np.int32)
    if scan_result.multi:
        sets = LabelSets.concat(scan_result.code_parts)
        return from_pairs(sets.value_rows(), lookup[sets.values].astype(np.int64), len(sets)) if len(lookup) else sets
    codes = np.concatenate(scan_result.code_parts) if scan_result.code_parts else np.zeros(0, np.int32)
    return lookup[codes] if len(lookup) else codes


def check_given_order(scan_result: Scan, names: list[str], source: Source) -> None:
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
