"""Multi-label data: label columns read as lists of names, and `LabelSets`, the label codes of many rows in two flat
arrays (a few bytes per label, never a Python list per row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textcls.data.errors import DataError


@dataclass
class LabelMode:
    """How label values are read. `multi`: True / False as the user (or the checkpoint) says, None: from the data (a
    list column, a separator or a fastText line with several labels makes it multi-label). `separator` splits a text
    label into several; `strings_are_sets`: a plain string is one label of a multi-label row (--data.multi_label true
    said so, a separator or fastText lines give it)."""

    multi: bool | None = None
    separator: str | None = None
    strings_are_sets: bool = False


class LabelSets:
    """The label codes of each row: row i holds `values[offsets[i]:offsets[i + 1]]` (sorted, no repeats).

    Sliced (`sets[a:b]`) and masked (`sets[bool mask]`) like a numpy array of codes, so the entry builders handle
    both tasks alike."""

    def __init__(self, offsets: np.ndarray, values: np.ndarray) -> None:
        self.offsets, self.values = offsets.astype(np.int64, copy=False), values.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, rows: Any) -> LabelSets:
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(len(self))
            offsets = self.offsets[start : stop + 1]
            return LabelSets(offsets - offsets[0], self.values[offsets[0] : offsets[-1]])
        return self.take(np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows))

    def take(self, rows: np.ndarray) -> LabelSets:
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # the value positions of every chosen row, one after the other, without a Python loop
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return LabelSets(offsets, self.values[positions])

    def value_rows(self) -> np.ndarray:
        """The row of each entry of `values`."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def multi_hot(self, num_labels: int) -> np.ndarray:
        """float32 [rows, num_labels], 1 where a row has the label."""
        out = np.zeros((len(self), num_labels), np.float32)
        out[self.value_rows(), self.values] = 1.0
        return out

    def counts(self, num_labels: int) -> np.ndarray:
        """How many rows have each label."""
        return np.bincount(self.values, minlength=num_labels)

    def strata(self, num_labels: int) -> np.ndarray:
        """One stratum per row for a stratified split: its rarest label (num_labels for a row without labels), so the
        rare labels are shared out between the splits first."""
        counts = self.counts(num_labels)
        key = np.full(len(self), num_labels, np.int64)
        rarity = counts[self.values]
        rows = self.value_rows()
        order = np.lexsort((rarity, rows))  # by row, the rarest label first
        first = np.ones(len(order), bool)
        first[1:] = rows[order][1:] != rows[order][:-1]
        key[rows[order][first]] = self.values[order][first]
        return key

    def to_arrow(self) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), pa.array(self.values, pa.int32()))

    @staticmethod
    def concat(parts: list[LabelSets]) -> LabelSets:
        if not parts:
            return LabelSets(np.zeros(1, np.int64), np.zeros(0, np.int32))
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return LabelSets(offsets, np.concatenate([p.values for p in parts]))


def label_lists(label: pa.Array, mode: LabelMode, fmt: str | None, where: str) -> pa.ListArray | None:
    """`label` as a list<string> array per row, or None when the rows are single-label strings.

    `where` names the file and column for messages. A list column is multi-label by itself; a text column is split by
    the separator, by whitespace in fastText files (their reader joins a line's labels with spaces), or read as one
    label per row when the mode is multi-label."""
    kind = label.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if mode.multi is False:
            raise DataError(
                f"{where} holds lists of labels (multi-label data), but the labels are read as one per row "
                "(--data.multi_label false, or a single-label model); drop --data.multi_label false, or use a "
                "multi-label checkpoint."
            )
        value_type = kind.value_type
        if pa.types.is_null(value_type):  # every list of the batch is empty
            return label.cast(pa.list_(pa.string()))
        if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
            raise DataError(
                f"{where} holds lists of {value_type} values; a multi-label column must hold lists of label names "
                'as strings, e.g. ["sports", "politics"].'
            )
        return label.cast(pa.list_(pa.string()))
    if fmt == "fasttext" and pc.any(pc.match_substring(label, " ")).as_py():
        if mode.multi is False:
            raise DataError(
                f"{where} has lines with several __label__s (multi-label data), but the labels are read as one per "
                "line (--data.multi_label false, or a single-label model); drop --data.multi_label false."
            )
        return pc.split_pattern(label, " ")
    if mode.separator is not None:
        return pc.split_pattern(label, mode.separator)
    if mode.multi and (mode.strings_are_sets or fmt == "fasttext"):
        return pc.split_pattern(label, "\x00")  # one label per row; "" becomes a row without labels below
    if mode.multi:
        raise DataError(
            f"{where} holds one label per row, but the model is multi-label; give lists of labels (JSON Lines "
            "arrays, Parquet lists), the --data.label_separator the training data used, or --data.multi_label true."
        )
    return None


def code_lists(
    lists: pa.ListArray, seen: dict[str, int], where: str, row_word: str, first_rows: np.ndarray
) -> LabelSets:
    """The rows' labels as codes into `seen` (new names are added), blanks dropped and repeats within a row removed.
    `first_rows` maps each row to its number in the file, for messages."""
    if lists.null_count:
        row = int(first_rows[int(np.flatnonzero(pc.is_null(lists).to_numpy(zero_copy_only=False))[0])])
        raise DataError(
            f"{where}, {row_word} {row}: the labels are missing (null); write [] for a text without labels, or "
            "remove the row."
        )
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    if flat.null_count:
        position = int(np.flatnonzero(pc.is_null(flat).to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{where}, {row_word} {int(first_rows[parents[position]])}: a label in the list is null; every label "
            "must be a name (a string)."
        )
    names = pc.utf8_trim_whitespace(flat)
    named = pc.not_equal(names, "").to_numpy(zero_copy_only=False)
    names, parents = names.filter(pa.array(named)), parents[named]
    encoded = pc.dictionary_encode(names)
    to_code = np.array([seen.setdefault(v, len(seen)) for v in encoded.dictionary.to_pylist()], dtype=np.int64)
    codes = to_code[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, np.int64)
    return from_pairs(parents.astype(np.int64), codes, len(lists))


def from_pairs(rows: np.ndarray, codes: np.ndarray, count: int) -> LabelSets:
    """LabelSets of `count` rows from (row, code) pairs in any order, repeats removed."""
    width = int(codes.max(initial=0)) + 1
    pairs = np.unique(rows * width + codes)
    rows, codes = pairs // width, pairs % width
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=count), out=offsets[1:])
    return LabelSets(offsets, codes.astype(np.int32))
