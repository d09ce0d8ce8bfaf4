"""Weights & Biases for textcls: a WandbLogger whose every setting is a config key, that falls back to offline when
W&B cannot be reached, and that receives the whole resolved LightningCLI config; plus the helpers the CLI calls.

wandb is an optional dependency (`pip install textcls[wandb]`); nothing here imports it until a W&B run starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn

from textcls import quiet
from textcls.compat import wandb_init_kwargs

OFFLINE_MODES = ("offline", "dryrun", "disabled")


class WandbLogger(_LightningWandbLogger):
    """Log to Weights & Biases. Unset values come from the usual WANDB_* variables (WANDB_PROJECT, WANDB_ENTITY,
    WANDB_RUN_GROUP, WANDB_TAGS, WANDB_MODE, WANDB_DIR); the API key only ever comes from WANDB_API_KEY or
    `wandb login`, never from a config, so it cannot end up in a saved config.

    Args:
        project: W&B project; unset means WANDB_PROJECT, else "textcls".
        entity: user or team that owns the project; unset means WANDB_ENTITY or your default entity.
        name: display name of the run; unset lets W&B pick one.
        group: groups runs in the UI (e.g. one sweep or one study); unset means WANDB_RUN_GROUP.
        tags: tags of the run; unset means WANDB_TAGS.
        notes: a longer description of the run.
        job_type: kind of run, e.g. "train" or "sweep".
        save_dir: where W&B writes its local files; unset means WANDB_DIR, else the run directory.
        offline: write the run locally only (`wandb sync` uploads it later); same as WANDB_MODE=offline.
        log_model: upload checkpoints as W&B artifacts: false, true (at the end of training) or "all" (every save).
        checkpoint_name: artifact name of the uploaded checkpoints; unset means "model-<run id>".
        prefix: string put in front of every metric name.
        watch: also log "gradients", "parameters" or "all" as histograms every `watch_log_freq` steps; null for none.
        watch_log_freq: steps between two gradient / parameter histograms.
        init_timeout: seconds to wait for the W&B server before warning and continuing offline.
    """

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        job_type: str | None = None,
        save_dir: str | None = None,
        offline: bool = False,
        log_model: bool | Literal["all"] = False,
        checkpoint_name: str | None = None,
        prefix: str = "",
        watch: Literal["gradients", "parameters", "all"] | None = None,
        watch_log_freq: int = 100,
        init_timeout: float = 60.0,
    ) -> None:
        if offline and log_model:
            raise ValueError(
                "--trainer.logger.init_args.log_model needs W&B online; set offline or log_model to false."
            )
        if watch_log_freq < 1:
            raise ValueError(f"--trainer.logger.init_args.watch_log_freq must be 1 or more, got {watch_log_freq}.")
        # Mode goes to wandb.init rather than through Lightning's `offline`, which rewrites os.environ["WANDB_MODE"].
        extra: dict[str, Any] = {"mode": "offline"} if offline else {}
        super().__init__(
            name=name,
            save_dir=save_dir,  # type: ignore[arg-type]
            project=project or os.environ.get("WANDB_PROJECT", "textcls"),
            log_model=log_model,
            prefix=prefix,
            checkpoint_name=checkpoint_name,
            entity=entity,
            group=group,
            tags=tags,
            notes=notes,
            job_type=job_type,
            **extra,
        )
        # Lightning passes `anonymous=None` to wandb.init, and wandb warns at every run that the setting has no effect.
        init = wandb_init_kwargs(self)
        if init.get("anonymous") is None:
            init.pop("anonymous", None)
        self.watch_mode = watch
        self.watch_log_freq = watch_log_freq
        self.init_timeout = init_timeout
        self._started = False
        self._went_offline = False

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if not self._started:
            self._started = True
            init = wandb_init_kwargs(self)
            init["settings"] = _settings(self.init_timeout)
            _quiet_shared_run_dir(init.get("dir"))
            if not _offline(init):
                try:
                    return super().experiment
                except Exception as err:  # wandb.errors.Error and friends: no key, refused, timed out
                    rank_zero_warn(
                        f"W&B is unreachable ({type(err).__name__}: {_first_line(err)}); training continues with an "
                        "offline W&B run (upload it later with `wandb sync <run folder>`)."
                    )
                    init["mode"] = "offline"
                    self._went_offline = True
        return super().experiment

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._went_offline:  # nothing can be uploaded offline
            super().after_save_checkpoint(checkpoint_callback)


def _quiet_shared_run_dir(directory: str | None) -> None:
    """W&B's folder goes into the run directory, before the CSV logger (Lightning starts W&B first) checks that
    directory for an earlier run's files; an empty one has none, so the CSV logger's warning would be wrong there."""
    if directory and Path(directory).is_dir() and not any(Path(directory).iterdir()):
        quiet.ignore_fresh_log_dir_warning(directory)


def _settings(init_timeout: float) -> Any:
    import wandb

    return wandb.Settings(init_timeout=init_timeout)


def _offline(init: dict[str, Any]) -> bool:
    return init.get("mode") in OFFLINE_MODES or os.environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def is_wandb_logger_config(logger: Any) -> bool:
    """Whether a (not yet instantiated) `trainer.logger` config value is a WandbLogger."""
    loggers = logger if isinstance(logger, list) else [logger]
    return any(str(getattr(item, "class_path", "")).endswith("WandbLogger") for item in loggers)


def wandb_save_dir(run_dir: Path) -> str | None:
    """Where W&B files go when the config does not say: WANDB_DIR if set (the ecosystem's variable), else the run
    directory, so that a run's files stay together."""
    return None if os.environ.get("WANDB_DIR") else str(run_dir)


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"optimizer": {"init_args": {"lr": 1e-3}}}} -> {"model.optimizer.init_args.lr": 1e-3}: the keys
    LightningCLI and a W&B sweep use, so runs and sweep parameters line up in the W&B table."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, name + "."))
        else:
            flat[name] = value
    return flat


def wandb_loggers(trainer: pl.Trainer) -> list[_LightningWandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, _LightningWandbLogger)]


class TrackingSaveConfig(SaveConfigCallback):
    """Save config.yaml in the run directory (as LightningCLI does) and give W&B the whole resolved config."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in loggers:
            logger.experiment.config.update(flat_config(resolved), allow_val_change=True)


class WandbWatch(Callback):
    """Start the gradient / parameter histograms a textcls WandbLogger asks for (`watch`), once per fit."""

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in wandb_loggers(trainer):
            mode = getattr(logger, "watch_mode", None)  # set by textcls's WandbLogger, absent from Lightning's
            if mode:
                logger.watch(pl_module, log=mode, log_freq=getattr(logger, "watch_log_freq", 100), log_graph=False)


@rank_zero_only
def finish_wandb(trainer: pl.Trainer | None) -> None:
    """End the W&B run of this command, so that a second run in the same process (a sweep, a notebook, the optimizer
    study) starts a new W&B run instead of writing into this one."""
    if trainer is None or not wandb_loggers(trainer):
        return
    import wandb

    if wandb.run is not None:
        wandb.finish()
