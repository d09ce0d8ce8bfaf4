"""The `textcls` command: LightningCLI with TextClassifier and TextDataModule, argument links and run directories."""

from __future__ import annotations

import sys
import warnings
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console
from rich.markup import escape

import textcls.models  # noqa: F401  (so the networks' short names resolve: --model.model TextCNN)
from textcls import quiet, run_config
from textcls.callbacks import PredictionWriter
from textcls.checkpoint import check_weights_fit
from textcls.checkpointing import ResumeCheckpoint, drop_repeated_early_stopping, use_task_monitors
from textcls.compat import SingleMergeCLI
from textcls.config_checks import check_config, check_config_files
from textcls.data import TextDataModule
from textcls.errors import UserError
from textcls.final_validation import ValidateAtLastStep
from textcls.help import ShortHelpFormatter, one_line_parser_error
from textcls.module import NonFiniteLossError, TextClassifier
from textcls.rundir import discard_empty_run_dir, print_run_summary, run_dir
from textcls.speed import Speedups
from textcls.tracking import TrackingSaveConfig, finish_wandb, is_wandb_logger_config, wandb_save_dir

# `trainer.callbacks` unless the config or command line gives a list: a YAML `trainer.callbacks:` list (or
# `--trainer.callbacks=[...]`) replaces it, `callbacks+:` / `--trainer.callbacks+=X` adds to it. Without
# FaultTolerance a run still trains and saves last.ckpt, but a resume is no longer bit-identical (the RNG stream and
# the mid-epoch data position restart) and SIGTERM / Ctrl-C stop without a checkpoint.
DEFAULT_CALLBACKS = [
    {"class_path": "textcls.callbacks.EpochSummary"},
    {"class_path": "pytorch_lightning.callbacks.LearningRateMonitor", "init_args": {"logging_interval": "step"}},
    {"class_path": "textcls.reporting.ClassificationReport"},
    {"class_path": "textcls.tracking.WandbWatch"},
    {"class_path": "textcls.training.FaultTolerance"},
    {"class_path": "textcls.callbacks.StopOtherRanks"},
]

err_console = Console(stderr=True, highlight=False)


class TextclsCLI(SingleMergeCLI):
    """LightningCLI for textcls: sizes flow from the data into the model, every run gets its own directory.

    The default callbacks are the parser's default for `trainer.callbacks` (DEFAULT_CALLBACKS), so a config can
    replace or drop any of them; `--print_config` shows the list in effect.
    """

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
            # As a class path, not an instance: jsonargparse can then print and save it in config.yaml.
            {"plugins": [{"class_path": "textcls.training.AtomicCheckpointIO"}]},
        )
        kwargs.setdefault("save_config_callback", TrackingSaveConfig)
        super().__init__(TextClassifier, TextDataModule, args=args, run=run, auto_configure_optimizers=False, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for size in ("vocab_size", "num_classes", "pad_id"):
            parser.link_arguments(f"data.{size}", f"model.model.init_args.{size}", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.label_names", apply_on="instantiate")
        parser.link_arguments("data.multi_label", "model.multi_label", apply_on="instantiate")
        parser.add_lightning_class_args(ResumeCheckpoint, "checkpoint")
        # A class group rather than a trainer default, so `--predictions.top_k 3` works on the command line.
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_class_arguments(Speedups, "speedups")
        parser.set_defaults(
            {
                "trainer.callbacks": DEFAULT_CALLBACKS,
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

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        error = parser.error
        parser.error = lambda message, ex=None: error(one_line_parser_error(message), ex)  # type: ignore[method-assign]
        return parser

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        settings = self.config[subcommand] if subcommand else self.config
        if settings.data.shuffle_seed is None and type(settings.seed_everything) is int:  # LightningCLI's seed
            settings.data.shuffle_seed = settings.seed_everything
        if subcommand is None:
            return
        check_config(self.config[subcommand], subcommand)
        config = self.config[subcommand]
        if config.trainer.default_root_dir is None:
            directory = run_dir(config, subcommand)
            config.trainer.default_root_dir = str(directory)
            csv_logger = Namespace(
                class_path="pytorch_lightning.loggers.CSVLogger",
                init_args=Namespace(save_dir=str(directory), name="", version=""),
            )
            if config.trainer.logger in (None, True):
                config.trainer.logger = csv_logger
            elif is_wandb_logger_config(config.trainer.logger) and not isinstance(config.trainer.logger, list):
                # The CSV logger stays first: it keeps metrics.csv, and it makes the run directory the trainer's
                # log_dir, so checkpoints and config.yaml land there as in every other run.
                if config.trainer.logger.init_args.get("save_dir") is None:
                    config.trainer.logger.init_args.save_dir = wandb_save_dir(directory)
                config.trainer.logger = [csv_logger, config.trainer.logger]

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except UserError:
            raise
        except ValueError as err:
            # A constructor rejected a value from the config or command line (a model's dropout, class_weights of
            # the wrong length, ...): the user's to fix, so one clear line instead of a traceback.
            raise UserError(f"invalid configuration: {err}") from err

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        init = self.config_init.get(str(self.subcommand), self.config_init)
        if isinstance(init.get("trainer.callbacks"), list):  # before Trainer() refuses two on one metric
            init["trainer.callbacks"] = drop_repeated_early_stopping(init["trainer.callbacks"])
        trainer = super().instantiate_trainer(**kwargs)
        configured = init.get("trainer.callbacks") or []
        speedups = init.get("speedups") or Speedups()
        speedups.apply(trainer, keep=configured if isinstance(configured, list) else [configured])
        use_task_monitors(trainer.callbacks, bool(getattr(self.datamodule, "multi_label", False)))  # type: ignore[attr-defined]
        trainer.callbacks = drop_repeated_early_stopping(trainer.callbacks)  # type: ignore[attr-defined]
        trainer.callbacks.append(ValidateAtLastStep())  # type: ignore[attr-defined]
        quiet.quiet_trainer(trainer)
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
            checkpoint = trainer.checkpoint_callback
            best = getattr(checkpoint, "best_model_path", "")
            if not best:  # a max_steps stop before the first validation: there is no best checkpoint to test
                _announce(
                    "No validation ran before fit stopped, so there is no best checkpoint: testing the weights fit "
                    "ended with. Validate more often with --trainer.val_check_interval N (training batches)."
                )
            trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None, verbose=True)
        print_run_summary(trainer)
        finish_wandb(trainer)

    def after_validate(self) -> None:
        print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)

    def after_test(self) -> None:
        print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)

    def after_predict(self) -> None:
        print_run_summary(self.trainer, best=False)
        finish_wandb(self.trainer)


@rank_zero_only
def _announce(message: str) -> None:
    err_console.print(escape(message), soft_wrap=True)


def _has_test_data(datamodule: TextDataModule) -> bool:
    return datamodule.has_test_data  # a test file, the demo, or a hub dataset's test split


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
    except UserError as err:
        discard_empty_run_dir()
        _print_error(err)
        raise SystemExit(2) from None
    except NonFiniteLossError as err:
        _print_error(err)
        raise SystemExit(3) from None
    finally:
        _release_process_group()


def _release_process_group() -> None:
    """Lightning destroys only an NCCL process group at exit; a gloo one left to interpreter shutdown can abort a rank
    ("terminate called without an active exception") once the rank that hosted its store has gone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@rank_zero_only
def _print_error(err: BaseException) -> None:
    """Once per run, not once per DDP process (every rank raises an error that every rank meets)."""
    err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", soft_wrap=True)
