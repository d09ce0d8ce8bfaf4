"""JSON Lines checks the Arrow reader cannot make: which line is wrong (it reports a row of a block, or nothing), and
a guard against nesting so deep that it overflows the reader's stack (a crash with no message at all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.errors import DataError
from textcls.data.rawtext import BLOCK, lines, open_bytes, undecodable

#: deeper than this is refused before pyarrow parses it (its recursive parser crashes somewhere past 10,000 levels);
#: real records nest a few levels
MAX_DEPTH = 1000
KINDS = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def check_nesting(path: Path, name: str) -> None:
    """Fail on a line nested deeper than MAX_DEPTH (brackets inside strings count too: an over-estimate).

    Only lines with more than MAX_DEPTH opening brackets can be that deep, and finding them costs one byte search
    per bracket kind per block, so the depth itself is computed for almost no line.
    """
    seen_lines = 0
    rest = b""
    with open_bytes(path) as handle:
        while True:
            block = handle.read(BLOCK)
            chunk = rest + block
            cut = chunk.rfind(b"\n") + 1 if block else len(chunk)
            chunk, rest = chunk[:cut], chunk[cut:]
            if chunk.count(b"[") + chunk.count(b"{") > MAX_DEPTH:
                _check_chunk(chunk, seen_lines, name)
            seen_lines += chunk.count(b"\n")
            if not block:
                return


def _check_chunk(chunk: bytes, seen_lines: int, name: str) -> None:
    data = np.frombuffer(chunk, dtype=np.uint8)
    step = np.zeros(len(data), dtype=np.int32)
    step[(data == ord("[")) | (data == ord("{"))] = 1
    step[(data == ord("]")) | (data == ord("}"))] = -1
    starts = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1))
    starts = starts[starts < len(data)]
    depth = np.cumsum(step)
    # Depth within each line: the running sum minus its value just before the line starts.
    before = np.concatenate(([0], depth[:-1]))[starts]
    deepest = np.maximum.reduceat(depth, starts) - before
    too_deep = np.flatnonzero(deepest > MAX_DEPTH)
    if len(too_deep):
        line = seen_lines + int(too_deep[0]) + 1
        raise DataError(
            f"{name}, line {line}: JSON nested more than {MAX_DEPTH} levels deep; each line must be one flat JSON "
            'object such as {"text": "...", "label": "..."}.'
        )


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
