"""Finding a run's newest complete `last.ckpt`, and the command line that resumes an interrupted run."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from pytorch_lightning.utilities import rank_zero_info


def resume_hint(argv: list[str], path: Path) -> str:
    """The resume command as one line for a shell: it changes to this directory first (the command's relative paths
    are relative to it) and names the program by its absolute path, so it runs in a fresh shell without PATH set up."""
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join(_resume_command(argv, path))}"


def _resume_command(argv: list[str], path: Path) -> list[str]:
    """The command line that was run, with `--ckpt_path` pointing at the saved checkpoint."""
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--ckpt_path" and i + 1 < len(args):
            del args[i : i + 2]
            break
        if arg.startswith("--ckpt_path="):
            del args[i]
            break
    return [*_program(argv[0] if argv else ""), *args, "--ckpt_path", str(path)]


def _program(argv0: str) -> list[str]:
    """How this process was started: `python -m textcls` (then argv[0] is textcls/__main__.py), or a script."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name in ("textcls", "textcls.__main__"):
        return [sys.executable, "-m", "textcls"]
    if not argv0:
        return ["textcls"]
    if os.sep not in argv0:  # found on PATH by the shell that started it
        argv0 = shutil.which(argv0) or argv0
    return [os.path.abspath(argv0)]


def newest_last_checkpoint(runs_root: Path, experiment: str) -> Path | None:
    """The most recently written complete `last.ckpt` under runs/<experiment>/<run>/checkpoints/, if any."""
    return next(complete_last_checkpoints(runs_root, experiment), None)


def complete_last_checkpoints(runs_root: Path, experiment: str) -> Iterator[Path]:
    """The complete `last.ckpt` files under runs/<experiment>/<run>/checkpoints/, newest first.

    A checkpoint is complete when torch can read it (`weights_only=True`); a partly written one from a crash is
    skipped with a message. DeepSpeed writes `last.ckpt` as a directory; it counts as complete once DeepSpeed's
    `latest` file names a tag folder that holds the model states (written last).
    """
    candidates = sorted(
        (runs_root / experiment).glob("*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in candidates:
        if path.is_dir():
            if _complete_deepspeed_checkpoint(path):
                yield path
            else:
                rank_zero_info(f"skipping incomplete DeepSpeed checkpoint directory {path}")
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for a truncated file
            rank_zero_info(f"skipping unreadable checkpoint {path} ({type(err).__name__})")
            continue
        yield path


def _complete_deepspeed_checkpoint(path: Path) -> bool:
    latest = path / "latest"
    if not latest.is_file():
        return False
    tag = latest.read_text(encoding="utf-8").strip()
    return bool(tag) and any((path / tag).glob("*model_states.pt"))
