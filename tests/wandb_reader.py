"""Read an offline W&B run file (run-<id>.wandb) back, for tests. wandb 0.31 ships no Python reader for it.

The file is a LevelDB log (https://github.com/google/leveldb/blob/main/doc/log_format.md): 32 KiB blocks of
records, each with a 7-byte header (checksum: 4 bytes, payload length: 2 bytes, both little-endian; type: 1 byte)
where type FULL holds a whole entry and FIRST / MIDDLE / LAST hold its pieces; a block's tail shorter than a header
is zero padding. W&B puts its own 7-byte file header in front ("W&B" ident, a magic number and a version) and writes
one `wandb_internal_pb2.Record` protobuf per entry. Unlike LevelDB, the checksum is zlib's CRC-32 of the type byte and
the payload, unmasked (checked against files wandb 0.31 wrote).
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
WANDB_HEADER = struct.Struct("<4sHB")  # ident b":W&B", magic, version


def checksum(kind: int, payload: bytes) -> int:
    """W&B's variant of the LevelDB checksum: plain CRC-32 (zlib's, not LevelDB's masked CRC-32C) of type + payload."""
    return zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF


def entries(path: str | Path) -> Iterator[bytes]:
    """The payloads of a LevelDB log, reassembled from their pieces, each checked against its CRC."""
    data = Path(path).read_bytes()
    ident, _magic, _version = WANDB_HEADER.unpack_from(data, 0)
    if ident != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (starts with {data[:4]!r})")
    pos = WANDB_HEADER.size
    pieces: list[bytes] = []
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # trailer of a block: zero padding
            pos += room
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:  # zero-filled rest of a block written before the run ended
            pos += room
            continue
        payload = data[pos + HEADER : pos + HEADER + length]
        if len(payload) < length:
            break  # the writer stopped mid-record (a crash); everything before it is still valid
        if checksum(kind, payload) != crc:
            raise ValueError(f"{path}: CRC mismatch in the record at byte {pos}")
        pos += HEADER + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pieces = [payload]
        elif kind == MIDDLE:
            pieces.append(payload)
        elif kind == LAST:
            pieces.append(payload)
            yield b"".join(pieces)
            pieces = []
        else:
            raise ValueError(f"{path}: unknown record type {kind} at byte {pos}")


def records(path: str | Path) -> Iterator[Any]:
    for payload in entries(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def wait_until_finished(path: str | Path, timeout: float = 30.0) -> None:
    """wandb.finish() can return before W&B's service has flushed the file; wait for the run's `exit` record."""
    deadline = time.monotonic() + timeout
    while not any(r.WhichOneof("record_type") == "exit" for r in records(path)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has no exit record after {timeout:.0f} s")
        time.sleep(0.2)


def _put(target: dict[str, Any], item: Any) -> None:
    """Set an item; a nested key (["test/per_class", "nrows"]) becomes nested dicts, as W&B shows it."""
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def _drop(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.get(key, {})
    target.pop(keys[-1], None)


def read_run(path: str | Path) -> dict[str, Any]:
    """{"config": {key: value}, "history": [row, ...], "summary": {...}, "run": RunRecord} from a run file."""
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    run = None
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            for item in record.run.config.update:
                _put(config, item)
        elif kind == "config":
            for item in record.config.update:
                _put(config, item)
            for item in record.config.remove:
                _drop(config, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _put(row, item)
            history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _put(summary, item)
            for item in record.summary.remove:
                _drop(summary, item)
    return {"config": config, "history": history, "summary": summary, "run": run}
