"""Where rows come from: local files in seven formats, or a loaded hub dataset, streamed as Arrow record batches.

Every source yields batches of a bounded size (`BLOCK_BYTES` of input), so no Python object per row is created and
memory does not grow with the file. Every reader error becomes a `DataError` naming the file and, where the reader
can tell, the line or row.
"""

from __future__ import annotations

import contextlib
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import xxhash

from textcls.data.csvscan import csv_problem
from textcls.data.errors import DataError
from textcls.data.jsonscan import check_nesting, json_problem
from textcls.data.rawtext import (
    check_text_file,
    first_line_with,
    first_undecodable_line,
    nul_error,
    open_bytes,
    read_error,
)

#: Rows handed on per batch: up to this much text (or REBATCH_ROWS rows), so the tokenizer has work for every core.
BLOCK_BYTES = 16 << 20
REBATCH_ROWS = 131_072
#: pyarrow's CSV / JSON readers read ahead up to 32 blocks in the background, so memory is ~32x the block size:
#: 1 MB blocks keep that at ~32 MB (16 MB blocks held 512 MB). A row longer than a block (a 5 MB review) makes the
#: reader fail; the read then restarts with 16x larger blocks, skipping the rows already handed on.
READ_BLOCK = 1 << 20
MAX_READ_BLOCK = 1 << 30
Format = Literal["csv", "tsv", "jsonl", "parquet", "labeltext", "fasttext", "lines"]
FORMATS: tuple[str, ...] = get_args(Format)
#: file extension -> format; `.txt` is decided by `resolve_format` (labelled: label-text or fastText; predict: lines)
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ft": "fasttext",
    ".fasttext": "fasttext",
    ".txt": "txt",
}
LINE_FORMATS = ("labeltext", "fasttext", "lines")
FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines"}
FASTTEXT_PREFIX = "__label__"
BOM = b"\xef\xbb\xbf"


def check_readable(path: str | Path, what: str) -> Path:
    """Fail with a clear message for a missing path, a directory, a pipe or device, an unreadable or empty file."""
    p = Path(path).expanduser()
    try:
        info = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        where = f"relative paths start at {Path.cwd()}"
        raise DataError(f"{what} '{p}' does not exist; check the path ({where}).") from None
    except OSError as err:
        raise DataError(f"{what} '{p}' cannot be read ({err.strerror or err}); check the path.") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{what} '{p}' is a directory; give the path of a file inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            f"{what} '{p}' is not a regular file (a pipe, socket or device); textcls reads a data file more than "
            "once (to hash, check and encode it), so save the data to a file and pass that."
        )
    if info.st_size == 0:
        raise DataError(f"{what} '{p}' is empty; it needs a header line and at least one row.")
    try:
        p.open("rb").close()
    except OSError as err:
        raise DataError(f"{what} '{p}' cannot be read ({err.strerror or err}); check its permissions.") from None
    return p


def resolve_format(path: Path, fmt: str | None, labelled: bool) -> str:
    """`fmt` if given, else from the extension. A `.txt` file holding labelled data is fastText when its first line
    starts with `__label__`, else `label text` lines; an unlabelled (predict) `.txt` is one text per line."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataError(f"--data.format {fmt!r} is not supported; use one of {', '.join(FORMATS)}.")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".lz4"):
        suffixes = suffixes[:-1]
    found = EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise DataError(
            f"'{path}': cannot tell the file format from its extension; use one of "
            f"{', '.join(sorted(EXTENSIONS))} or pass --data.format ({', '.join(FORMATS)})."
        )
    if found != "txt":
        return found
    if not labelled:
        return "lines"
    try:
        with open_bytes(path) as handle:
            start = handle.read(len(FASTTEXT_PREFIX) + len(BOM)).removeprefix(BOM)
    except OSError as err:
        raise read_error(f"file '{path}'", path, err) from None
    return "fasttext" if start.startswith(FASTTEXT_PREFIX.encode()) else "labeltext"


def file_fingerprint(path: Path) -> str:
    """Size, mtime and an xxh3-128 hash of the whole content.

    xxh3 hashes at memory speed (several GB/s, so a multi-GB file costs well under a second per GB from the page
    cache), against minutes to tokenize it; hashing all bytes rather than a sample means an edit that keeps size and
    mtime (a copy with preserved timestamps, a same-length fix) still rebuilds the cache.
    """
    stat = path.stat()
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return f"{stat.st_size}-{stat.st_mtime_ns}-{digest.hexdigest()}"


class Source:
    """A table of string columns that can be read several times, batch by batch.

    Args:
        name: how messages refer to it, e.g. "training file 'data/train.csv'".
        row_word: "line" for line-oriented files, "data row" for tables (so messages point at the right place).
    """

    name: str
    row_word = "data row"

    def column_names(self) -> list[str]:
        raise NotImplementedError

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches whose columns are all strings (nulls allowed)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError


class FileSource(Source):
    """A local file. `text_name` / `label_name` name the two columns that line formats produce."""

    def __init__(self, path: str | Path, what: str, fmt: str | None, labelled: bool, text_name: str, label_name: str):
        self.path = check_readable(path, what)
        self.fmt = resolve_format(self.path, fmt, labelled)
        self.name = f"{what} '{self.path}'"
        self.row_word = "line" if self.fmt in LINE_FORMATS else "data row"
        self.text_name, self.label_name = text_name, label_name
        self._fingerprint: str | None = None
        self._looked_at = False  # the first bytes were checked (check_text_file)
        self._strictly_read = False  # csvscan has read the whole file without a problem
        self._nesting_checked = False

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            try:
                self._fingerprint = f"{self.fmt}:{file_fingerprint(self.path)}"
            except OSError as err:
                raise read_error(self.name, self.path, err) from None
        return self._fingerprint

    def column_names(self) -> list[str]:
        self._look()
        if self.fmt in LINE_FORMATS:
            return [self.text_name] if self.fmt == "lines" else [self.label_name, self.text_name]
        if self.fmt == "parquet":
            try:
                names = list(pq.ParquetFile(self.path).schema_arrow.names)
            except (pa.ArrowException, OSError) as err:
                raise DataError(f"{self.name} could not be read as Parquet: {_short(err)}") from None
            return self._unique(names)
        if self.fmt in ("csv", "tsv"):
            return self._header_names()
        return next(self.batches()).schema.names

    def batches(self) -> Iterator[pa.RecordBatch]:
        self._look()
        readers: dict[str, Callable[[], Iterator[pa.RecordBatch]]] = {
            "csv": self._csv_batches,
            "tsv": self._csv_batches,
            "jsonl": self._json_batches,
            "parquet": self._parquet_batches,
        }
        reader = readers.get(self.fmt, self._line_batches)
        seen_rows = False
        pending: list[pa.RecordBatch] = []
        rows = size = 0
        try:
            for batch in reader():
                if not seen_rows:
                    self._unique(batch.schema.names)
                seen_rows = True
                pending.append(_all_strings(batch))
                rows, size = rows + len(batch), size + batch.nbytes
                if rows >= REBATCH_ROWS or size >= BLOCK_BYTES:
                    yield _concat(pending)
                    pending, rows, size = [], 0, 0
        except OSError as err:  # a compressed stream that ends early, an I/O error
            raise read_error(self.name, self.path, err) from None
        if pending:
            yield _concat(pending)
        if not seen_rows and self.fmt not in LINE_FORMATS:
            # Header-only: the readers produce no batch at all; messages need the columns, so yield an empty one.
            yield self._empty_batch()

    def _look(self) -> None:
        """Refuse binary, mis-named compressed or non-UTF-8 files before a parser misreads them."""
        if not self._looked_at and self.fmt != "parquet":
            check_text_file(self.path, self.name, FORMAT_NAMES.get(self.fmt, "text"))
        self._looked_at = True

    def _unique(self, names: list[str]) -> list[str]:
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise DataError(
                f"{self.name}: the column {repeated!r} appears {names.count(repeated)} times in its header; "
                "give every column a different name."
            )
        return names

    def _empty_batch(self) -> pa.RecordBatch:
        names = self.column_names() if self.fmt == "parquet" else self._header_names()
        return pa.record_batch([pa.array([], pa.string()) for _ in names], names=names)

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
                    if not _row_longer_than_block(err):
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
                if not _row_longer_than_block(err):
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
                line_break, nul = _control_bytes(batch)
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
        return DataError(f"{self.name} could not be read as {self.fmt.upper()}: {_short(err)}")

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
                pa.field(f.name, pa.string()) if _text_like(f.type) else f
                for f in pajson.open_json(self.path, read_options=read).schema
            ]
            options = pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
            return pajson.open_json(self.path, read_options=read, parse_options=options)

        try:
            for batch in self._resumable(open_reader):
                if _invalid_utf8_column(batch) is not None:  # pyarrow's JSON reader does not check
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
        return DataError(f"{self.name} could not be read as JSON Lines: {_short(err)}")

    # ----- Parquet -----

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        first_row = 1
        try:
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=65_536):
                column = _invalid_utf8_column(batch)
                if column is not None:
                    row = first_row + _first_invalid_utf8(batch.column(column))
                    raise DataError(
                        f"{self.name}, row {row}: column {column!r} holds bytes that are not UTF-8; "
                        "write the file with valid UTF-8 strings."
                    )
                first_row += len(batch)
                yield batch
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{self.name} could not be read as Parquet: {_short(err)}") from None

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
        parts = pc.split_pattern_regex(stripped, r"\s", max_splits=1)
        label = pc.list_element(parts, 0)  # splitting "" gives [""], so element 0 always exists
        text = _second(parts)
        if self.fmt == "fasttext":
            # Further labels of a multi-label line (`__label__a __label__b text`) are not supported: keep the first.
            text = pc.replace_substring_regex(text, pattern=r"^(\s*__label__\S*)+", replacement="")
        return pa.record_batch([label, text], names=[self.label_name, self.text_name])


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


class TableSource(Source):
    """An Arrow table already in memory or memory-mapped (hub datasets, the synthetic demo)."""

    def __init__(self, table: pa.Table, name: str, fingerprint: str) -> None:
        self.table, self.name, self._fingerprint = table, name, fingerprint

    def fingerprint(self) -> str:
        return self._fingerprint

    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    def batches(self) -> Iterator[pa.RecordBatch]:
        batches = self.table.to_batches(max_chunksize=65_536)
        if not batches:
            batches = [pa.record_batch([c.combine_chunks() for c in self.table.columns], schema=self.table.schema)]
        for batch in batches:
            yield _all_strings(batch)


def _all_strings(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Every column that has a text form as strings (numbers, booleans, dictionaries); lists and structs keep their
    type, so an unused nested column does not stop a read (build.texts_and_labels refuses a used one)."""
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if not pa.types.is_string(field.type):
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = column.cast(pa.string())
        columns.append(column)
    return pa.record_batch(columns, names=batch.schema.names)


def _text_like(kind: pa.DataType) -> bool:
    return pa.types.is_null(kind) or pa.types.is_temporal(kind)


def _control_bytes(batch: pa.RecordBatch) -> tuple[bool, bool]:
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


def _invalid_utf8_column(batch: pa.RecordBatch) -> str | None:
    """The first string column holding bytes that are not UTF-8 (readers other than CSV do not check)."""
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                return field.name
    return None


def _first_invalid_utf8(column: pa.Array) -> int:
    for index, value in enumerate(column.cast(pa.binary()).to_pylist()):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError:
            return index
    return 0


def _row_longer_than_block(err: Exception) -> bool:
    return "straddl" in str(err).lower() or "block size" in str(err).lower()


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _short(err: Exception) -> str:
    """pyarrow messages can quote a whole row, binary bytes included; keep the first line, printable, bounded."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in re.sub(r"\s+", " ", text))
    return text if len(text) <= 300 else text[:300] + "..."
