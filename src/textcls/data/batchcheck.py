"""Checks and conversions of the record batches a reader hands on: string columns, control bytes, UTF-8."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pyarrow as pa


def all_strings(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Every column that has a text form as strings (numbers, booleans, dictionaries); lists and structs keep their
    type, so an unused nested column does not stop a read (build.texts_and_labels refuses a used one)."""
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if not pa.types.is_string(field.type):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = column.cast(pa.string())
        columns.append(column)
    return pa.record_batch(columns, names=batch.schema.names)


def text_like(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or pa.types.is_temporal(kind)


def control_bytes(batch: pa.RecordBatch) -> tuple[bool, bool]:
    """(a value holds a line break, a value holds a NUL byte): one vectorised pass over the string bytes."""
    line_break = nul = False
    for column in batch.columns:
        data = _string_bytes(column)
        if data is None:
            continue
        low = data[data < 14]
        if len(low):
            line_break = line_break or bool(((low == 10) | (low == 13)).any())
            nul = nul or bool((low == 0).any())
    return line_break, nul


def _string_bytes(column: pa.Array) -> np.ndarray | None:
    if not pa.types.is_string(column.type) or len(column) == 0:
        return None
    offsets_buffer, data_buffer = column.buffers()[1:3]
    if data_buffer is None:
        return None
    offsets = np.frombuffer(offsets_buffer, np.int32, count=len(column) + 1, offset=column.offset * 4)
    return np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]


def invalid_utf8_column(batch: pa.RecordBatch) -> str | None:
    """The first string column holding bytes that are not UTF-8 (readers other than CSV do not check)."""
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                return field.name
    return None


def first_invalid_utf8(column: pa.Array) -> int:
    for index, value in enumerate(column.cast(pa.binary()).to_pylist()):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError:
            return index
    return 0


def row_longer_than_block(err: Exception) -> bool:
    return "straddl" in str(err).lower() or "block size" in str(err).lower()


def concat_batches(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def short_error(err: Exception) -> str:
    """pyarrow messages can quote a whole row, binary bytes included; keep the first line, printable, bounded."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in re.sub(r"\s+", " ", text))
    return text if len(text) <= 300 else text[:300] + "..."
