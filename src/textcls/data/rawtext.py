"""A data file's bytes before a parser sees them: decompression by file name, what the bytes are (compressed, another
format, binary, UTF-16, not UTF-8), and the physical line of a byte-level problem.

The Arrow readers report such files as a column-count or parse error far from the cause (or leak a third-party
traceback), so these checks run first, over a small sample, and on the error path over the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from textcls.data.errors import DataError

#: file-name suffix -> the compression pyarrow decodes for it
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
#: leading bytes -> (compression, the suffix that says so); xz is recognised only to say it is not read
COMPRESSION_MAGIC = [
    (b"\x1f\x8b", "gzip", ".gz"),
    (b"BZh", "bz2", ".bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd", ".zst"),
    (b"\x04\x22\x4d\x18", "lz4", ".lz4"),
    (b"\xfd7zXZ\x00", "xz", ".xz"),
]
OTHER_FORMATS = [
    (b"PAR1", "a Parquet file"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook or a zipped file?)"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
]
UTF_BOMS = [
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
]
SAMPLE_BYTES = 64 << 10
BLOCK = 8 << 20
READABLE = "textcls reads UTF-8 text (optionally .gz, .bz2, .zst or .lz4 compressed) and Parquet"


def compression_of(path: Path) -> str | None:
    return COMPRESSION_SUFFIXES.get(path.suffix.lower())


def open_bytes(path: Path) -> BinaryIO:
    """The file's content, decompressed when its name ends in a compression suffix."""
    return pa.input_stream(str(path), compression=compression_of(path))


def read_error(name: str, path: Path, err: OSError) -> DataError:
    """An OSError while reading a data file, as one line: a broken compressed stream, or the system's reason."""
    compression = compression_of(path)
    reason = " ".join((getattr(err, "strerror", None) or str(err) or type(err).__name__).split())[:200]
    if compression is not None:
        return DataError(
            f"{name} could not be decompressed as {compression} ({reason}): the file is truncated or damaged; "
            "download or compress it again."
        )
    return DataError(f"{name} could not be read ({reason}); check the file and its permissions.")


def check_text_file(path: Path, name: str, what: str) -> None:
    """Fail unless the file (decompressed) starts like UTF-8 text: `what` names the expected format in messages."""
    with path.open("rb") as handle:
        head = handle.read(16)
    found = next(((kind, suffix) for magic, kind, suffix in COMPRESSION_MAGIC if head.startswith(magic)), None)
    compression = compression_of(path)
    if found is not None and found[0] != compression:
        kind, suffix = found
        todo = (
            f"decompress it (`xz -d`): {READABLE}."
            if kind == "xz"
            else f"rename it to '{path.name}{suffix}' so it is decompressed, or decompress it."
        )
        raise DataError(f"{name} holds {kind}-compressed data, but its name does not end in {suffix}; {todo}")
    if found is None and compression is not None:
        raise DataError(
            f"{name} is named {path.suffix} but does not hold {compression}-compressed data; "
            f"rename it without '{path.suffix}', or compress it with {compression}."
        )
    try:
        with open_bytes(path) as handle:
            sample = handle.read(SAMPLE_BYTES)
    except OSError as err:
        raise read_error(name, path, err) from None
    problem = sample_problem(sample, complete=len(sample) < SAMPLE_BYTES, what=what)
    if problem is not None:
        raise DataError(f"{name}{problem}")


def sample_problem(sample: bytes, complete: bool, what: str) -> str | None:
    """Why `sample` (a file's first bytes) is not UTF-8 text, as the tail of a message, or None."""
    binary = f": it looks like binary data; give a {what} file ({READABLE})."
    for magic, kind in OTHER_FORMATS:
        if sample.startswith(magic):
            return f" is {kind}, not {what} text; {READABLE}."
    for bom, encoding in UTF_BOMS:
        if sample.startswith(bom):
            return f" is {encoding} text (it starts with a {encoding} byte-order mark); re-save it as UTF-8."
    nul = sample.find(b"\x00")
    if nul >= 0:
        if _looks_utf16(sample):
            return " looks like UTF-16 text (every other byte is zero); re-save it as UTF-8."
        if _looks_binary(sample):
            return f", line {line_at(sample, nul)}: a NUL byte{binary}"
        return f", line {line_at(sample, nul)}: {NUL_TODO}"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        if not complete and err.start >= len(sample) - 3:
            return None  # the sample ends inside a character
        line = line_at(sample, err.start)
        if _looks_binary(sample):
            return f", line {line}: bytes that are not text{binary}"
        return (
            f", line {line}: bytes that are not UTF-8 ({err.object[err.start : err.end]!r}); re-save the file as "
            "UTF-8 (is it Latin-1 or Windows-1252?)."
        )
    return None


def _looks_utf16(sample: bytes) -> bool:
    even, odd = sample[0::2], sample[1::2]
    return max(even.count(0) / max(len(even), 1), odd.count(0) / max(len(odd), 1)) > 0.3


def _looks_binary(sample: bytes) -> bool:
    controls = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    return controls > 0.05 * max(len(sample), 1)


def line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def lines(path: Path, universal: bool = False) -> Iterator[bytes]:
    """The file's physical lines (with their line ends), decompressed; `universal` also ends a line at a lone CR,
    as the CSV reader does."""
    rest = b""
    with open_bytes(path) as handle:
        while block := handle.read(BLOCK):
            block = rest + block
            parts = block.splitlines(keepends=True) if universal else block.split(b"\n")
            if not universal:
                parts = [p + b"\n" for p in parts[:-1]] + [parts[-1]]
            # The last part may continue in the next block (a CR may be the first half of CRLF).
            rest = parts.pop() if parts and (not parts[-1].endswith(b"\n")) else b""
            yield from parts
    if rest:
        yield rest


def first_undecodable_line(path: Path, name: str) -> DataError | None:
    """The first line that is not UTF-8, as an error naming it; None when the whole file decodes."""
    for number, line in enumerate(lines(path), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return undecodable(name, number, err)
    return None


def undecodable(name: str, number: int, err: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{name}, line {number}: bytes that are not UTF-8 ({err.object[err.start : err.end]!r} at column "
        f"{err.start + 1}); re-save the file as UTF-8."
    )


def first_line_with(path: Path, needle: bytes) -> int | None:
    """The physical line of the first occurrence of `needle` (one byte), or None."""
    seen = 0
    with open_bytes(path) as handle:
        while block := handle.read(BLOCK):
            at = block.find(needle)
            if at >= 0:
                return seen + block.count(b"\n", 0, at) + 1
            seen += block.count(b"\n")
    return None


NUL_TODO = "a NUL byte, which text never holds (is part of the file binary or UTF-16?); re-save it as UTF-8 text."


def nul_error(name: str, line: int | None) -> DataError:
    return DataError(f"{name}, line {line}: {NUL_TODO}" if line is not None else f"{name}: {NUL_TODO}")
