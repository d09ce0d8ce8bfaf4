"""The per-format readers of a `FileSource`: CSV / TSV, JSON Lines, Parquet and the line formats.

Each turns reader errors into a `DataError` naming the file and, where it can tell, the line or row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from textcls.data.batchcheck import (
    control_bytes,
    first_invalid_utf8,
    invalid_utf8_column,
    row_longer_than_block,
    short_error,
    text_like,
)
from textcls.data.csvscan import csv_problem
from textcls.data.errors import DataError
from textcls.data.jsonscan import check_nesting, json_problem
from textcls.data.rawtext import first_line_with, first_undecodable_line, nul_error, open_bytes, read_error

#: Rows handed on per batch: up to this much text (or REBATCH_ROWS rows), so the tokenizer has work for every core.
BLOCK_BYTES = 16 << 20
#: pyarrow's CSV / JSON readers read ahead up to 32 blocks in the background, so memory is ~32x the block size:
#: 1 MB blocks keep that at ~32 MB (16 MB blocks held 512 MB). A row longer than a block (a 5 MB review) makes the
#: reader fail; the read then restarts with 16x larger blocks, skipping the rows already handed on.
READ_BLOCK = 1 << 20
MAX_READ_BLOCK = 1 << 30
FASTTEXT_PREFIX = "__label__"
BOM = b"\xef\xbb\xbf"


class FormatReaders:
    """Reading methods of `FileSource`, one group per format; the attributes are set by `FileSource.__init__`."""

    name: str
    path: Path
    fmt: str
    text_name: str
    label_name: str
    _strictly_read: bool
    _nesting_checked: bool

    def _unique(self, names: list[str]) -> list[str]:
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise DataError(
                f"{self.name}: the column {repeated!r} appears {names.count(repeated)} times in its header; "
                "give every column a different name."
            )
        return names

    def _header_names(self) -> list[str]:
        if self.fmt == "jsonl":
            return []
        try:
            for block in self._block_sizes():
                try:
                    read = pacsv.ReadOptions(block_size=block)
                    reader = pacsv.open_csv(self.path, read_options=read, parse_options=self._csv_parse_options())
                    return self._unique(list(reader.schema.names))
                except pa.ArrowInvalid as err:
                    if not row_longer_than_block(err):
                        raise
            raise DataError(f"{self.name}: a row is longer than {MAX_READ_BLOCK >> 20} MB.")
        except pa.ArrowInvalid as err:
            raise self._csv_error(err) from None
        except OSError as err:
            raise read_error(self.name, self.path, err) from None

    _read_block = READ_BLOCK  # grows (per source) when a row does not fit

    def _block_sizes(self) -> Iterator[int]:
        while self._read_block <= MAX_READ_BLOCK:
            yield self._read_block
            self._read_block *= 16

    def _resumable(self, open_reader: Callable[[int], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
        """Batches of `open_reader(block_size)`; when a row is longer than a block, start again with larger blocks
        and skip the rows already yielded, so the caller sees one uninterrupted sequence of rows."""
        done = 0
        for block in self._block_sizes():
            skip = done
            try:
                for batch in open_reader(block):
                    if skip >= len(batch):
                        skip -= len(batch)
                        continue
                    batch, skip = batch.slice(skip), 0
                    done += len(batch)
                    yield batch
                return
            except pa.ArrowInvalid as err:
                if not row_longer_than_block(err):
                    raise
        raise DataError(f"{self.name}: a row is longer than {MAX_READ_BLOCK >> 20} MB.")

    # ----- CSV / TSV -----

    def _csv_parse_options(self) -> pacsv.ParseOptions:
        # No invalid_row_handler: pyarrow calls it with the row decoded as UTF-8, and a binary row makes it print an
        # "Exception ignored" traceback. Errors are located by csvscan instead.
        if self.fmt == "tsv":
            # TSV files from the wild rarely quote, and a lone '"' inside a text must not swallow the next lines.
            return pacsv.ParseOptions(delimiter="\t", quote_char=False)
        return pacsv.ParseOptions(delimiter=",", newlines_in_values=True)

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        names = self._header_names()

        def open_reader(block: int) -> Iterator[pa.RecordBatch]:
            return pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=block),
                parse_options=self._csv_parse_options(),
                # Strings only: a label column of integers must keep its text form ("01" stays "01").
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False
                ),
            )

        try:
            for batch in self._resumable(open_reader):
                line_break, nul = control_bytes(batch)
                if nul:
                    raise nul_error(self.name, first_line_with(self.path, b"\x00"))
                if line_break and not self._strictly_read:
                    self._read_strictly()
                yield batch
        except pa.ArrowInvalid as err:
            raise self._csv_error(err) from None

    def _read_strictly(self) -> None:
        """A field holds a line break: make sure no quote left open read later lines into it."""
        problem = csv_problem(self.path, self.name, self._delimiter, quoted=self.fmt == "csv")
        if problem is not None:
            raise problem
        self._strictly_read = True

    @property
    def _delimiter(self) -> str:
        return "\t" if self.fmt == "tsv" else ","

    def _csv_error(self, err: Exception) -> DataError:
        problem = csv_problem(self.path, self.name, self._delimiter, quoted=self.fmt == "csv")
        if problem is not None:
            return problem
        if "empty" in str(err).lower():
            return DataError(
                f"{self.name} has no header line (only blank lines); its first line must name the columns, "
                "e.g. text,label."
            )
        return DataError(f"{self.name} could not be read as {self.fmt.upper()}: {short_error(err)}")

    # ----- JSON Lines -----

    def _json_batches(self) -> Iterator[pa.RecordBatch]:
        if not self._nesting_checked:
            check_nesting(self.path, self.name)
            self._nesting_checked = True

        def open_reader(block: int) -> Iterator[pa.RecordBatch]:
            # The streaming reader fixes its schema after the first block, so a key seen first later, or a key null
            # throughout the first block, would fail the read: the first block's keys are read with null and date
            # types as text (a date keeps its own spelling), and later new keys are ignored.
            read = pajson.ReadOptions(block_size=block)
            fields = [
                pa.field(f.name, _first_block_type(f.type))
                for f in pajson.open_json(self.path, read_options=read).schema
            ]
            options = pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
            return pajson.open_json(self.path, read_options=read, parse_options=options)

        try:
            for batch in self._resumable(open_reader):
                if invalid_utf8_column(batch) is not None:  # pyarrow's JSON reader does not check
                    raise first_undecodable_line(self.path, self.name) or DataError(
                        f"{self.name} holds bytes that are not UTF-8; re-save the file as UTF-8."
                    )
                yield batch
        except pa.ArrowInvalid as err:
            raise self._json_error(err) from None

    def _json_error(self, err: Exception) -> DataError:
        problem = json_problem(self.path, self.name)
        if problem is not None:
            return problem
        return DataError(f"{self.name} could not be read as JSON Lines: {short_error(err)}")

    # ----- Parquet -----

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        first_row = 1
        try:
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=65_536):
                column = invalid_utf8_column(batch)
                if column is not None:
                    row = first_row + first_invalid_utf8(batch.column(column))
                    raise DataError(
                        f"{self.name}, row {row}: column {column!r} holds bytes that are not UTF-8; "
                        "write the file with valid UTF-8 strings."
                    )
                first_row += len(batch)
                yield batch
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{self.name} could not be read as Parquet: {short_error(err)}") from None

    # ----- line formats -----

    def _line_batches(self) -> Iterator[pa.RecordBatch]:
        first_line = 1
        for lines in _line_blocks(self.path, self.name):
            try:
                text = lines.cast(pa.string())
            except pa.ArrowInvalid:
                raise first_undecodable_line(self.path, self.name) or DataError(
                    f"{self.name} is not valid UTF-8; re-save the file as UTF-8."
                ) from None
            yield self._split_lines(text, first_line)
            first_line += len(lines)

    def _split_lines(self, lines: pa.Array, first_line: int) -> pa.RecordBatch:
        lines = pc.utf8_rtrim(lines, characters="\r")
        if self.fmt == "lines":
            return pa.record_batch([lines], names=[self.text_name])
        stripped = pc.utf8_ltrim_whitespace(lines)
        if self.fmt == "fasttext":
            blank = pc.equal(pc.utf8_trim_whitespace(stripped), "")
            bad = pc.and_(pc.invert(pc.starts_with(stripped, FASTTEXT_PREFIX)), pc.invert(blank))
            if pc.any(bad).as_py():
                row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
                raise DataError(
                    f"{self.name}, line {first_line + row}: a fastText line must start with "
                    f"'{FASTTEXT_PREFIX}<label>' ({lines[row].as_py()[:60]!r}); fix it or pass --data.format."
                )
            stripped = pc.utf8_slice_codeunits(stripped, len(FASTTEXT_PREFIX))
        if self.fmt == "fasttext":
            # Every label of a line (`__label__a __label__b text`), joined by one space: labelsets reads a label with
            # a space as several (a fastText label cannot hold whitespace).
            parts = pc.extract_regex(stripped, r"^(?P<labels>\S*(?:\s+__label__\S*)*)\s*(?P<text>.*)$")
            labels = pc.replace_substring_regex(
                pc.struct_field(parts, "labels"), pattern=r"\s+__label__", replacement=" "
            )
            text = pc.fill_null(pc.struct_field(parts, "text"), "")
            return pa.record_batch([pc.fill_null(labels, ""), text], names=[self.label_name, self.text_name])
        parts = pc.split_pattern_regex(stripped, r"\s", max_splits=1)
        label = pc.list_element(parts, 0)  # splitting "" gives [""], so element 0 always exists
        text = _second(parts)
        return pa.record_batch([label, text], names=[self.label_name, self.text_name])


def _first_block_type(kind: pa.DataType) -> pa.DataType:
    """The type a JSON key keeps for the whole file, from its first block: text for null and date values, and lists
    of text for lists that were all empty there (a multi-label column whose first rows have no label)."""
    if text_like(kind):
        return pa.string()
    if pa.types.is_list(kind) and pa.types.is_null(kind.value_type):
        return pa.list_(pa.string())
    return kind


def _second(parts: pa.ListArray) -> pa.Array:
    padded = pc.if_else(pc.greater(pc.list_value_length(parts), 1), parts, pa.scalar(["", ""], parts.type))
    return pc.list_element(padded, 1)


def _line_blocks(path: Path, name: str) -> Iterator[pa.Array]:
    """Lines as binary arrays, read `BLOCK_BYTES` at a time and cut at the last newline of each block."""
    rest = b""
    lines_before = 0
    with open_bytes(path) as handle:
        while True:
            block = handle.read(BLOCK_BYTES)
            if not block:
                break
            block = rest + block if lines_before or rest else block.removeprefix(BOM)
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            yield _checked_lines(block[:cut], lines_before, name)
            lines_before += block.count(b"\n", 0, cut) + 1
    if rest:
        yield _checked_lines(rest, lines_before, name)


def _checked_lines(text: bytes, lines_before: int, name: str) -> pa.Array:
    nul = text.find(b"\x00")
    if nul >= 0:
        raise nul_error(name, lines_before + text.count(b"\n", 0, nul) + 1)
    return pa.array(text.split(b"\n"), pa.binary())
