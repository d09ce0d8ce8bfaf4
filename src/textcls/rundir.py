"""One directory per run: runs/<experiment>/<timestamp>[-N], never reused, made by the launch's rank 0 only."""

from __future__ import annotations

import contextlib
import errno
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from textcls.errors import environment_error

_RUNS_ROOT_TODO = "pass --runs_root a directory you can write to"
_created: list[Path] = []  # made by this process, so a run that fails before writing anything can remove them
_console = Console(highlight=False)


def run_dir(config: Namespace, subcommand: str) -> Path:
    """A new run directory from the launch's global rank 0; the path every other rank is given creates nothing.

    Only rank 0 writes into the run directory: Lightning writes logs and checkpoints on rank 0 and broadcasts their
    paths (`trainer.log_dir`, the checkpoint dirpath) to the other ranks, so they need no directory of their own,
    whether Lightning's DDP launcher started them or torchrun, srun or another node did.
    """
    experiment = experiment_name(config)
    if launch_rank() == 0:
        return new_run_dir(Path(config.runs_root), experiment, subcommand)
    return Path(config.runs_root) / experiment


def launch_rank() -> int:
    """This process's global rank as its launcher set it, before any process group exists: Lightning's
    `rank_zero_only.rank` (from RANK, LOCAL_RANK, SLURM_PROCID, ...), and the node rank for Lightning's own launcher
    on another node, whose first process has no rank variable but NODE_RANK (0 stands for rank 0 only if both are 0).
    """
    return int(getattr(rank_zero_only, "rank", 0) or 0) + LightningEnvironment().node_rank()


def experiment_name(config: Namespace) -> str:
    """Runs are grouped by the first config file's name (configs/textcnn.yaml -> runs/textcnn/...); without one,
    by the experiment of the checkpoint (runs/textcnn/<run>/checkpoints/best.ckpt -> textcnn)."""
    for path in config.get("config") or []:
        if path is not None:  # None stands for an inline YAML string, such as the checkpoint defaults
            return Path(str(getattr(path, "relative", path))).stem
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and Path(ckpt_path).is_file() and len(Path(ckpt_path).parents) > 2:
        return Path(ckpt_path).resolve().parents[2].name
    return "default"


def new_run_dir(root: Path, experiment: str, stage: str) -> Path:
    """Create a fresh directory (global rank 0 only; see run_dir for the other ranks)."""
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
            _created.append(candidate)
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
    """A run that failed before writing anything leaves no directory behind (only directories this process made)."""
    while _created:
        with contextlib.suppress(OSError):
            _created.pop().rmdir()  # only succeeds when empty


@rank_zero_only
def print_run_summary(trainer: Any, best: bool = True) -> None:
    """The run directory (every subcommand), and after fit the best checkpoint."""
    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") if checkpoint and best else ""
    _console.print(f"Run directory: [bold]{trainer.default_root_dir}[/bold]", soft_wrap=True)
    if best_path:
        _console.print(
            f"Best checkpoint: {best_path} ({checkpoint.monitor} {float(checkpoint.best_model_score or 0):.4f})",
            soft_wrap=True,
        )
