"""One directory per run: runs/<experiment>/<timestamp>[-N], never reused."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

# The first process of a run picks the directory and exports it: the processes Lightning's DDP launcher starts
# later re-run the same command line (with LOCAL_RANK > 0) and must write into that directory, not make their own.
RUN_DIR_ENV = "TEXTCLS_RUN_DIR"


def new_run_dir(root: Path, experiment: str, stage: str) -> Path:
    """Create and export a fresh directory (global rank 0 only; see cli._run_dir for the other ranks)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if stage == "fit" else f"-{stage}"
    parent = root / experiment
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / f"{stamp}{suffix}{'' if attempt == 0 else f'-{attempt}'}"
        try:
            candidate.mkdir()  # atomic: two runs started in the same second get different directories
        except FileExistsError:
            continue
        os.environ[RUN_DIR_ENV] = str(candidate)
        return candidate
    raise RuntimeError(f"could not create a new run directory under {parent}")


def discard_empty_run_dir() -> None:
    """A run that failed before writing anything leaves no directory behind."""
    path = os.environ.get(RUN_DIR_ENV)
    if path and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        with contextlib.suppress(OSError):
            Path(path).rmdir()  # only succeeds when empty
