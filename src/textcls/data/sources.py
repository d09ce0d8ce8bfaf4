"""Where rows come from: local files in seven formats, or a loaded hub dataset, streamed as Arrow record batches.

Every source yields batches of a bounded size (`BLOCK_BYTES` of input), so no Python object per row is created and
memory does not grow with the file. Every reader error becomes a `DataError` naming the file and, where the reader
can tell, the line or row.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from textcls.data.batchcheck import all_strings, concat_batches, short_error
from textcls.data.errors import DataError
from textcls.data.rawtext import (
    check_text_file,
    open_bytes,
    read_error,
)
from textcls.data.readers import BLOCK_BYTES, BOM, FASTTEXT_PREFIX, FormatReaders

#: Rows handed on per batch, at most (see BLOCK_BYTES).
REBATCH_ROWS = 131_072
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


class FileSource(FormatReaders, Source):
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
                raise DataError(f"{self.name} could not be read as Parquet: {short_error(err)}") from None
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
                pending.append(all_strings(batch))
                rows, size = rows + len(batch), size + batch.nbytes
                if rows >= REBATCH_ROWS or size >= BLOCK_BYTES:
                    yield concat_batches(pending)
                    pending, rows, size = [], 0, 0
        except OSError as err:  # a compressed stream that ends early, an I/O error
            raise read_error(self.name, self.path, err) from None
        if pending:
            yield concat_batches(pending)
        if not seen_rows and self.fmt not in LINE_FORMATS:
            # Header-only: the readers produce no batch at all; messages need the columns, so yield an empty one.
            yield self._empty_batch()

    def _look(self) -> None:
        """Refuse binary, mis-named compressed or non-UTF-8 files before a parser misreads them."""
        if not self._looked_at and self.fmt != "parquet":
            check_text_file(self.path, self.name, FORMAT_NAMES.get(self.fmt, "text"))
        self._looked_at = True

    def _empty_batch(self) -> pa.RecordBatch:
        names = self.column_names() if self.fmt == "parquet" else self._header_names()
        return pa.record_batch([pa.array([], pa.string()) for _ in names], names=names)


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
            yield all_strings(batch)
