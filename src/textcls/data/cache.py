"""A directory of finished cache entries: built once under a file lock, published by an atomic rename.

An entry is a directory named after a hash of everything it was built from. It is written under a temporary name
and renamed into place only when complete, so a run that dies half-way leaves at most a `*.tmp-*` directory that no
lookup ever reads (it is swept on the next build of that key). Builders of the same key (two runs, or every DDP
rank) take the entry's lock: the first builds, the others wait and then open the finished entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

#: bump when the layout of an entry changes, so that old entries are not read
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textcls"


def cache_key(kind: str, inputs: dict[str, Any]) -> str:
    """`<kind>-<hash>`: the hash covers every input (file fingerprints and settings) as canonical JSON."""
    text = json.dumps({"version": CACHE_VERSION, "kind": kind, **inputs}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def get_or_build(cache_dir: Path, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The entry directory for `key` and whether it was built now; `build(tmp_dir)` fills a fresh directory."""
    final = cache_dir / key
    if final.is_dir():
        return final, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f"{key}.lock")):
        if final.is_dir():  # another process built it while we waited
            return final, False
        for stale in cache_dir.glob(f"{key}.tmp-*"):  # left by a run that died; we hold the lock, so not in use
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache_dir / f"{key}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            build(tmp)
            _fsync_dir(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def _fsync_dir(path: Path) -> None:
    """Flush the entry's files before the rename publishes it, so a power cut cannot publish empty files."""
    for child in path.iterdir():
        with child.open("rb") as handle:
            os.fsync(handle.fileno())
