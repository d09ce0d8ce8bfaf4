"""The `textcls` command: LightningCLI with TextClassifier and TextDataModule, argument links and run directories."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console
from rich.markup import escape

import textcls.models  # noqa: F401  (so the networks' short names resolve: --model.model TextCNN)
from textcls import quiet, run_config
from textcls.callbacks import EpochSummary, PredictionWriter, StopOtherRanks
from textcls.checkpoint import check_weights_fit
from textcls.config_checks import check_config, check_config_files
from textcls.data import DataError, TextDataModule
from textcls.help import ShortHelpFormatter
from textcls.module import NonFiniteLossError, TextClassifier
from textcls.reporting import ClassificationReport
from textcls.rundir import RUN_DIR_ENV, discard_empty_run_dir, new_run_dir
from textcls.tracking import TrackingSaveConfig, WandbWatch, finish_wandb, is_wandb_logger_config, wandb_save_dir
from textcls.training import (
    FaultTolerance,
    ResumeCheckpoint,
    skip_idle_batch_hooks,
    use_throttled_progress_bar,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class TextclsCLI(LightningCLI):
    """LightningCLI for textcls: sizes flow from the data into the model, every run gets its own directory."""

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # `export` and `serve` are dispatched outside LightningCLI; the epilog is how `textcls --help` tells of them.
        epilog = (
            "Also: textcls export --ckpt_path CKPT --output DIR (ONNX; see textcls export --help), and "
            "textcls serve --ckpt_path CKPT | --model_dir DIR (HTTP; see textcls serve --help)."
        )
        kwargs.setdefault("parser_kwargs", {"epilog": epilog, "formatter_class": ShortHelpFormatter})
        kwargs.setdefault(
            "trainer_defaults",
            {
                "callbacks": [
                    EpochSummary(),
                    LearningRateMonitor(logging_interval="step"),
                    ClassificationReport(),
                    WandbWatch(),
                    FaultTolerance(),
                    StopOtherRanks(),
                ],
                # As a class path, not an instance: jsonargparse can then print and save it in config.yaml.
                "plugins": [{"class_path": "textcls.training.AtomicCheckpointIO"}],
                "profiler": {"class_path": "textcls.training.QuietProfiler"},
            },
        )
        kwargs.setdefault("save_config_callback", TrackingSaveConfig)
        super().__init__(TextClassifier, TextDataModule, args=args, run=run, auto_configure_optimizers=False, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for size in ("vocab_size", "num_classes", "pad_id"):
            parser.link_arguments(f"data.{size}", f"model.model.init_args.{size}", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.label_names", apply_on="instantiate")
        parser.add_lightning_class_args(ResumeCheckpoint, "checkpoint")
        # A class group rather than a trainer default, so `--predictions.top_k 3` works on the command line.
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, test the best checkpoint when there is test data.",
        )
        parser.add_argument("--runs_root", type=str, default="runs", help="Directory that holds one folder per run.")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """One parse, with a checkpoint's settings merged in under the user's own (see textcls.run_config)."""
        if isinstance(args, (dict, Namespace)):
            self.checkpoint_plan = run_config.CheckpointPlan([])
            return super().parse_arguments(parser, args)
        argv = list(sys.argv[1:] if args is None else args)
        check_config_files(argv)  # a malformed YAML named by file:line:column, not "<unicode string>"
        self.checkpoint_plan = run_config.plan(argv, announce=_announce)
        with warnings.catch_warnings():
            # We pass the command line on ourselves (plus the checkpoint defaults); that is not the mistake
            # Lightning warns about. sys.argv stays untouched so DDP's relaunch of the command still works.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            super().parse_arguments(parser, self.checkpoint_plan.argv)

    def _parse_ckpt_path(self) -> None:
        """Nothing: LightningCLI would merge the checkpoint's hyper-parameters a second time, over the user's values
        and before any check of the classes they name; parse_arguments merged them once, checked, under the user's.
        (The one private LightningCLI method textcls overrides; Lightning 2.6 offers no public switch for it.)"""

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        check_config(self.config[subcommand], subcommand)
        config = self.config[subcommand]
        if config.trainer.default_root_dir is None:
            run_dir = _run_dir(config, subcommand)
            config.trainer.default_root_dir = str(run_dir)
            csv_logger = Namespace(
                class_path="pytorch_lightning.loggers.CSVLogger",
                init_args=Namespace(save_dir=str(run_dir), name="", version=""),
            )
            if config.trainer.logger in (None, True):
                config.trainer.logger = csv_logger
            elif is_wandb_logger_config(config.trainer.logger) and not isinstance(config.trainer.logger, list):
                # The CSV logger stays first: it keeps metrics.csv, and it makes the run directory the trainer's
                # log_dir, so checkpoints and config.yaml land there as in every other run.
                if config.trainer.logger.init_args.get("save_dir") is None:
                    config.trainer.logger.init_args.save_dir = wandb_save_dir(run_dir)
                config.trainer.logger = [csv_logger, config.trainer.logger]

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except DataError:
            raise
        except ValueError as err:
            # A constructor rejected a value from the config or command line (a model's dropout, class_weights of
            # the wrong length, ...): the user's to fix, so one clear line instead of a traceback.
            raise DataError(f"invalid configuration: {err}") from err

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        use_throttled_progress_bar(trainer)
        quiet.quiet_trainer(trainer)
        skip_idle_batch_hooks(trainer.callbacks)  # type: ignore[attr-defined]
        return trainer

    def _check_checkpoint_fits(self) -> None:
        """The checkpoint's weights must fit the network built from the merged config, or one line says so before
        Lightning's loader fails with a traceback."""
        checkpoint, path = self.checkpoint_plan.checkpoint, self.checkpoint_plan.path
        if checkpoint is not None and path is not None:
            check_weights_fit(self.model.model, checkpoint["state_dict"], path, prefix="model.")

    def before_validate(self) -> None:
        self._check_checkpoint_fits()

    def before_test(self) -> None:
        self._check_checkpoint_fits()

    def before_predict(self) -> None:
        self._check_checkpoint_fits()

    def before_fit(self) -> None:
        from textcls.initialisers import initialise_from_data

        self._check_checkpoint_fits()
        self.model.check_optimizer(self.trainer.gradient_clip_val)  # before the run writes anything
        resuming = bool(self.config.fit.get("ckpt_path"))
        initialise_from_data(self.model, self.datamodule, resuming=resuming, loggers=self.trainer.loggers)

    def after_fit(self) -> None:
        trainer = self.trainer
        if self.config.fit.test_after_fit and _has_test_data(self.datamodule):
            trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best", verbose=True)
        _print_run_summary(trainer)
        finish_wandb(trainer)

    def after_validate(self) -> None:
        _print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)

    def after_test(self) -> None:
        _print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)

    def after_predict(self) -> None:
        _print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)


def _run_dir(config: Namespace, subcommand: str) -> Path:
    """A new run directory, made by global rank 0 only.

    Processes that rank 0 did not start itself (another node, or every task under srun / torchrun) know only their
    rank from the environment; they must not create a directory of their own, which would stay empty. They never write
    there: Lightning writes logs and checkpoints on rank 0 and broadcasts its paths (log_dir, checkpoint dirpath).
    """
    experiment = _experiment_name(config)
    if _launch_rank() == 0:
        return new_run_dir(Path(config.runs_root), experiment, subcommand)
    inherited = os.environ.get(RUN_DIR_ENV)
    if int(os.environ.get("LOCAL_RANK") or 0) > 0 and inherited:
        # Started by rank 0's DDP launcher on this node, which exported its directory just before. (Elsewhere the
        # variable can be stale, e.g. left by an earlier in-process run, so it is not trusted on its own.)
        return Path(inherited)
    return Path(config.runs_root) / experiment


def _launch_rank() -> int:
    for name in ("RANK", "SLURM_PROCID"):  # torchrun / torchelastic, SLURM srun
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return int(os.environ.get("NODE_RANK") or 0) + int(os.environ.get("LOCAL_RANK") or 0)


@rank_zero_only
def _announce(message: str) -> None:
    err_console.print(escape(message), soft_wrap=True)


def _experiment_name(config: Namespace) -> str:
    """Runs are grouped by the first config file's name (configs/textcnn.yaml -> runs/textcnn/...); without one,
    by the experiment of the checkpoint (runs/textcnn/<run>/checkpoints/best.ckpt -> textcnn)."""
    for path in config.get("config") or []:
        if path is not None:  # None stands for an inline YAML string, such as the checkpoint defaults
            return Path(str(getattr(path, "relative", path))).stem
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and Path(ckpt_path).is_file() and len(Path(ckpt_path).parents) > 2:
        return Path(ckpt_path).resolve().parents[2].name
    return "default"


def _has_test_data(datamodule: TextDataModule) -> bool:
    return datamodule.has_test_data  # a test file, the demo, or a hub dataset's test split


@rank_zero_only
def _print_run_summary(trainer: Any, best: bool = True) -> None:
    """The run directory (every subcommand), and after fit the best checkpoint."""
    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") if checkpoint and best else ""
    console.print(f"Run directory: [bold]{trainer.default_root_dir}[/bold]", soft_wrap=True)
    if best_path:
        console.print(
            f"Best checkpoint: {best_path} (val/acc {float(checkpoint.best_model_score or 0):.4f})", soft_wrap=True
        )


def main(args: list[str] | None = None) -> None:
    """Entry point of the `textcls` console script."""
    quiet.install()
    argv = list(sys.argv[1:] if args is None else args)
    try:
        if argv[:1] == ["export"]:
            # Not a Trainer method, so not a LightningCLI subcommand: its own parser over export()'s signature.
            from jsonargparse import auto_cli

            from textcls.export import export

            auto_cli(export, args=argv[1:], as_positional=False, prog="textcls export")
            return
        TextclsCLI(args=args)
    except DataError as err:
        discard_empty_run_dir()
        _print_error(err)
        raise SystemExit(2) from None
    except NonFiniteLossError as err:
        _print_error(err)
        raise SystemExit(3) from None


@rank_zero_only
def _print_error(err: BaseException) -> None:
    """Once per run, not once per DDP process (every rank raises an error that every rank meets)."""
    err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", soft_wrap=True)
