"""One directory per run: runs/<experiment>/<timestamp>[-N], never reused."""

from __future__ import annotations

import contextlib
import errno
import os
from datetime import datetime
from pathlib import Path

from textcls.errors import environment_error

# The first process of a run picks the directory and exports it: the processes Lightning's DDP launcher starts
# later re-run the same command line (with LOCAL_RANK > 0) and must write into that directory, not make their own.
RUN_DIR_ENV = "TEXTCLS_RUN_DIR"
_RUNS_ROOT_TODO = "pass --runs_root a directory you can write to"


def new_run_dir(root: Path, experiment: str, stage: str) -> Path:
    """Create and export a fresh directory (global rank 0 only; see cli._run_dir for the other ranks)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if stage == "fit" else f"-{stage}"
    parent = root / experiment
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            candidate = parent / f"{stamp}{suffix}{'' if attempt == 0 else f'-{attempt}'}"
            try:
                candidate.mkdir()  # atomic: two runs started in the same second get different directories
            except FileExistsError:
                continue
            os.environ[RUN_DIR_ENV] = str(candidate)
            return candidate
    except OSError as err:
        blocker = _file_in_the_way(parent)  # the message names the file itself, not the path below it
        path = blocker or err.filename or parent
        if blocker is not None:
            err = OSError(errno.ENOTDIR, "not a directory")
        raise environment_error(err, "create a run directory", path, _RUNS_ROOT_TODO) from None
    raise RuntimeError(f"could not create a new run directory under {parent}")


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing non-directory on the way down to `path`, if any."""
    for candidate in [*reversed(path.parents), path]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def discard_empty_run_dir() -> None:
    """A run that failed before writing anything leaves no directory behind."""
    path = os.environ.get(RUN_DIR_ENV)
    if path and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        with contextlib.suppress(OSError):
            Path(path).rmdir()  # only succeeds when empty
