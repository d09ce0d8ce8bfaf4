"""JSON Lines checks the Arrow reader cannot make: which line is wrong (it reports a row of a block, or nothing), and
a guard against nesting so deep that it overflows the reader's stack (a crash with no message at all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.errors import DataError
from textcls.data.rawtext import BLOCK, lines, open_bytes, undecodable

#: deeper than Python's parser goes (its recursion limit) is refused before pyarrow parses it: pyarrow's recursive
#: parser crashes the process somewhere past 10,000 levels. Real records nest a few levels.
MAX_DEPTH = 1000
KINDS = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def check_nesting(path: Path, name: str) -> None:
    """Fail on a line nested deeper than Python's JSON parser goes (about MAX_DEPTH levels).

    Only a line with more than MAX_DEPTH opening brackets can be that deep; only such lines (brackets inside strings
    count, so also a text full of '[') are parsed to tell.
    """
    seen_lines = 0
    rest = b""
    with open_bytes(path) as handle:
        while True:
            block = handle.read(BLOCK)
            chunk = rest + block if rest else block
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
            # Whole lines only; the last, unfinished one waits for the next block (or is the file's last line).
            cut = (int(ends[-1]) + 1 if len(ends) else 0) if block else len(chunk)
            starts = np.concatenate(([0], ends + 1))
            stops = np.concatenate((ends, [len(chunk)]))
            for index in np.flatnonzero(stops - starts > MAX_DEPTH):  # only a long line can be deep
                start, stop = int(starts[index]), min(int(stops[index]), cut)
                if start < cut:
                    _check_line(chunk[start:stop], seen_lines + int(index) + 1, name)
            seen_lines += len(ends)
            rest = chunk[cut:]
            if not block:
                return


def _check_line(line: bytes, number: int, name: str) -> None:
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return
    try:
        json.loads(line)
    except RecursionError:
        raise DataError(
            f"{name}, line {number}: JSON nested more than {MAX_DEPTH} levels deep; each line must be one flat JSON "
            'object such as {"text": "...", "label": "..."}.'
        ) from None
    except ValueError:
        pass  # not valid JSON: the reader's error path names the line


def json_problem(path: Path, name: str) -> DataError | None:
    """The first line that is not UTF-8, not JSON, not an object, repeats a key, or changes a key's type."""
    first_kind: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(lines(path), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            return undecodable(name, number, err)
        if not text.strip():
            continue
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as dup:
            return DataError(f"{name}, line {number}: the key {dup.key!r} appears twice in one object.")
        except RecursionError:
            return DataError(f"{name}, line {number}: JSON nested too deeply; each line must be one flat object.")
        except json.JSONDecodeError as bad:
            hint = " (a pretty-printed JSON file is not JSON Lines)" if text.strip() in ("{", "[") else ""
            return DataError(
                f"{name}, line {number}: not valid JSON ({bad.msg}); each line must be one JSON object{hint}."
            )
        if not isinstance(value, dict):
            kind = KINDS.get(type(value), "null")
            hint = (
                ": the file holds one JSON array, not JSON Lines; write one object per line (`jq -c '.[]'`)"
                if number == 1 and isinstance(value, list) and value and isinstance(value[0], dict)
                else "; each line must be one JSON object"
            )
            return DataError(f"{name}, line {number}: a JSON {kind}, not an object{hint}.")
        for key, item in value.items():
            if item is None:
                continue
            kind = KINDS.get(type(item), type(item).__name__)
            first = first_kind.setdefault(key, (kind, number))
            if first[0] != kind:
                return DataError(
                    f"{name}, line {number}: {key!r} is a JSON {kind} here but a {first[0]} on line {first[1]}; "
                    "give a key the same type on every line (quote numbers that are labels or text)."
                )
    return None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result
