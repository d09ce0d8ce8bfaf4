"""Read a local file of labelled (or unlabelled) texts into an Arrow table.

pyarrow's multithreaded readers parse CSV / TSV / JSON Lines straight into columnar memory, so no Python
object per row is ever created. Every reader error is turned into a `DataError` that names the file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from textcls.data.errors import DataError

#: file extension -> format name; `.txt` is one text per line (for prediction inputs)
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}


def detect_format(path: Path) -> str:
    """The format from the file name; compressed files (`.csv.gz`) are recognised by the inner extension."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".lz4"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    known = ", ".join(sorted(FORMATS))
    raise DataError(f"{path}: cannot tell the file format from its extension; use one of {known}.")


def check_readable(path: str | Path, what: str) -> Path:
    """Fail with a clear message for a missing path or a directory given as a file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} '{p}' does not exist; check the path (relative paths start at {Path.cwd()}).")
    if p.is_dir():
        raise DataError(f"{what} '{p}' is a directory; give the path of a file inside it.")
    if p.stat().st_size == 0:
        raise DataError(f"{what} '{p}' is empty; it needs a header line and at least one row.")
    return p


def read_table(path: str | Path, what: str = "data file") -> pa.Table:
    """Read a whole file as an Arrow table with every column typed as a string."""
    p = check_readable(path, what)
    fmt = detect_format(p)
    try:
        if fmt == "txt":
            return _read_lines(p)
        if fmt == "jsonl":
            table = pajson.read_json(p)
        else:
            table = pacsv.read_csv(
                p,
                parse_options=_csv_parse_options(fmt),
                # Strings only: a label column of integers must keep its text form ("01" stays "01").
                convert_options=pacsv.ConvertOptions(
                    column_types=_all_string_columns(p, fmt), strings_can_be_null=False
                ),
            )
    except pa.ArrowInvalid as err:
        raise DataError(f"{what} '{p}' could not be read as {fmt.upper()}: {_short(err)}") from None
    return table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]), safe=False)


def _csv_parse_options(fmt: str) -> pacsv.ParseOptions:
    if fmt == "tsv":
        # TSV files from the wild rarely quote, and a lone '"' inside a text must not swallow the next lines.
        return pacsv.ParseOptions(delimiter="\t", quote_char=False)
    return pacsv.ParseOptions(delimiter=",", newlines_in_values=True)


def _all_string_columns(path: Path, fmt: str) -> dict[str, pa.DataType]:
    """Read only the header so that every column can be declared a string before the full parse."""
    reader = pacsv.open_csv(path, parse_options=_csv_parse_options(fmt))
    return {name: pa.string() for name in reader.schema.names}


def _read_lines(path: Path) -> pa.Table:
    with path.open(encoding="utf-8", newline="") as handle:
        try:
            lines = [line.rstrip("\r\n") for line in handle]
        except UnicodeDecodeError as err:
            raise DataError(f"'{path}' is not UTF-8 text ({err.reason} at byte {err.start}); re-save it as UTF-8.") from None
    return pa.table({"text": pa.array(lines, pa.string())})


def _short(err: Exception) -> str:
    """pyarrow messages can quote a whole row; keep the first line, bounded."""
    text = str(err).strip().splitlines()[0]
    return text if len(text) <= 300 else text[:300] + "..."
