"""A directory of finished cache entries: built once under a file lock, published by an atomic rename, verified on
every use.

An entry is a directory named after a hash of everything it was built from. It is written under a temporary name
and renamed into place only when complete, so a run that dies half-way leaves at most a `*.tmp-*` directory that no
lookup ever reads (it is swept on the next build of that key). Builders of the same key (two runs, or every DDP
rank) take the entry's lock: the first builds, the others wait and then open the finished entry.

A published entry lists its files with their sizes and content hashes (`manifest.json`); an entry whose files do not
match it (truncated, edited, deleted, or no manifest at all) is never read: it is rebuilt, with one warning. Errors
of the file system under the cache (read-only, permission denied, not a directory, no space left) are user errors
naming the path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash
from filelock import FileLock
from pytorch_lightning.utilities import rank_zero_only

from textcls.data.errors import DataError

#: bump when the layout of an entry changes, so that old entries are not read
CACHE_VERSION = 2
MANIFEST = "manifest.json"
#: errno values that say the cache's file system refuses the write, not that the program is wrong
REFUSED = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "a directory is in the way",
    errno.EMFILE: "too many open files",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textcls"


def cache_key(kind: str, inputs: dict[str, Any]) -> str:
    """`<kind>-<hash>`: the hash covers every input (file fingerprints and settings) as canonical JSON."""
    text = json.dumps({"version": CACHE_VERSION, "kind": kind, **inputs}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def get_or_build(cache_dir: Path, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The entry directory for `key` and whether it was built now; `build(tmp_dir)` fills a fresh directory."""
    final = cache_dir / key
    damage = entry_damage(final) if final.is_dir() else None
    if final.is_dir() and damage is None:
        return final, False
    try:
        return _build_locked(cache_dir, key, build), True
    except OSError as err:
        refused = REFUSED.get(err.errno or 0)
        if refused is None:
            raise
        raise _refused_error(cache_dir, err, refused, damage and f"{final} is damaged ({damage}) and ") from None


def _build_locked(cache_dir: Path, key: str, build: Callable[[Path], None]) -> Path:
    final = cache_dir / key
    if cache_dir.exists() and not cache_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(cache_dir))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f"{key}.lock")):
        if final.is_dir():
            damage = entry_damage(final)
            if damage is None:  # another process built it while we waited
                return final
            _warn(f"the cached data in {final} is damaged ({damage}); rebuilding it.")
            doomed = cache_dir / f"{key}.tmp-damaged-{os.getpid()}"
            os.replace(final, doomed)  # out of every reader's way at once; removed below
            shutil.rmtree(doomed, ignore_errors=True)
        for stale in cache_dir.glob(f"{key}.tmp-*"):  # left by a run that died; we hold the lock, so not in use
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache_dir / f"{key}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            build(tmp)
            _write_manifest(tmp)
            _fsync_dir(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def entry_damage(entry: Path) -> str | None:
    """What is wrong with a published entry (a file missing, of another size or content), or None if it is intact.

    Hashing every file costs a read of the entry (xxh3 runs at memory speed: ~0.1 s per GB from the page cache),
    small next to the training epoch that reads it anyway.
    """
    try:
        listed = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))["files"]
        for name, (size, digest) in listed.items():
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} bytes, {size} were written"
            if _digest(path) != digest:
                return f"{name} was changed after it was written"
    except FileNotFoundError:
        return f"{MANIFEST} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{MANIFEST} is unreadable: {type(err).__name__}"
    return None


def _write_manifest(entry: Path) -> None:
    files = {p.name: [p.stat().st_size, _digest(p)] for p in sorted(entry.iterdir()) if p.is_file()}
    (entry / MANIFEST).write_text(json.dumps({"files": files}), encoding="utf-8")


def _digest(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def _refused_error(cache_dir: Path, err: OSError, reason: str, damaged: str | None) -> DataError:
    where = err.filename or cache_dir
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free some space there, or point --data.cache_dir at a disk with room; nothing was left half-written"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        todo = f"--data.cache_dir must be a directory (or a path that can become one), and {cache_dir} is not"
    else:
        todo = "make it writable, or point --data.cache_dir at a directory you can write to"
    return DataError(f"{damaged or ''}cannot write the data cache ({where}: {reason}): {todo}.")


@rank_zero_only
def _warn(message: str) -> None:
    # Attributed to no source line, so Python prints the warning as one line instead of two.
    warnings.warn_explicit(message, UserWarning, filename="textcls", lineno=0)


def _fsync_dir(path: Path) -> None:
    """Flush the entry's files before the rename publishes it, so a power cut cannot publish empty files."""
    for child in path.iterdir():
        with child.open("rb") as handle:
            os.fsync(handle.fileno())
