"""A strict second reading of a CSV / TSV file that says where it goes wrong, in physical lines.

pyarrow's reader is fast but lenient: a quote left open reads every later line into one field until some other quote
closes it (rows lost without a word), and the row numbers it reports count records, not lines. Python's `csv`
module in strict mode stops at a quote that is not followed by a delimiter or a line end, and counts lines. It runs
only when pyarrow failed, or when a field holds a line break (the one way an open quote can hide), so the fast path
of files without multi-line fields never pays for it.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textcls.data.errors import DataError
from textcls.data.rawtext import lines, nul_error, undecodable


def csv_problem(path: Path, name: str, delimiter: str, quoted: bool) -> DataError | None:
    """The first problem in the file as an error naming its line, or None when the file is well-formed.

    Problems: bytes that are not UTF-8, a NUL byte, a quote whose field runs over a line end and is closed by a quote
    followed by text or never closed, a record with more or fewer fields than the header. A quote followed by text
    on the line it opened (`"a"b`) reads as pyarrow reads it (`ab`) and is not reported: no row is lost.
    """
    position = {"line": 0}

    def decoded() -> Iterator[str]:
        for number, raw in enumerate(lines(path, universal=True), start=1):
            position["line"] = number
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise undecodable(name, number, err) from None
            yield text

    dialect: dict[str, Any] = {"delimiter": delimiter, "strict": True}
    if quoted:
        dialect.update(quotechar='"', doublequote=True, quoting=csv.QUOTE_MINIMAL)
    else:
        dialect.update(quoting=csv.QUOTE_NONE, quotechar=None)
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # a 5 MB review is one field
    try:
        return _scan(csv.reader(decoded(), **dialect), name, position, delimiter)
    except DataError as err:
        return err
    finally:
        csv.field_size_limit(limit)


def _scan(reader: Iterator[list[str]], name: str, position: dict[str, int], delimiter: str) -> DataError | None:
    expected: int | None = None
    while True:
        start = position["line"] + 1
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as err:
            end, message = position["line"], str(err)
            if "NUL" in message:
                return nul_error(name, end)
            if "end of data" in message:
                return DataError(
                    f"{name}, line {start}: a quote opened on this line is never closed, so every line after it "
                    f"({end - start} of them, to the end of the file) would be read into one field; close the quote "
                    'or double a quote that is part of the text ("").'
                )
            if end > start:
                return DataError(
                    f"{name}, line {start}: a quoted field that opens on this line runs over {end - start} line "
                    f"end(s) to a quote on line {end} that is followed by more text, so those lines would be read "
                    'into one field; close the quote on its own line, or double a quote that is part of the text ("").'
                )
            continue  # `"a"b` on one line: read as `ab`, nothing lost
        if not row:
            continue  # pyarrow skips empty lines too
        if expected is None:
            expected = len(row)
            continue
        if len(row) != expected:
            shown = delimiter.join(row)[:80]
            return DataError(
                f"{name}, line {start}: expected {expected} columns, found {len(row)} ({shown!r}); quote fields "
                "that contain the delimiter, or fix that row."
            )
