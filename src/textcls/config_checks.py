"""Configuration checks that run before any data is read or anything is written.

Lightning and torch check most of these values too, but only when they use them: after the training data has been
read and tokenized, some only after an epoch, with checkpoints already on disk. Here the parsed configuration is
checked as a whole first, and the first problem is one `UserError` naming the key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace

from textcls.config_classes import build_network, build_scheduler, class_path, init_args, stand_in_optimizer
from textcls.data.datamodule import DEMO
from textcls.data.hub import import_datasets
from textcls.errors import UserError, user_error

# What TextClassifier logs (see test_config_checks.py, which trains and compares), and the step and epoch counters
# that Lightning's callbacks also accept as monitors. Test metrics are never there during fit.
LOGGED_METRICS = (
    "val/loss",
    "val/acc",
    "val/f1",
    "val/acc_best",
    "train/loss_step",
    "train/loss_epoch",
    "train/acc",
    "train/f1",
)
# What a multi-label TextClassifier logs instead (test_multilabel_module.py trains and compares); its task is known
# only once the data is read, so a monitor may name either set.
MULTI_LABEL_LOGGED_METRICS = (
    "val/loss",
    "val/f1_macro",
    "val/f1_micro",
    "val/map",
    "val/f1_macro_best",
    "train/loss_step",
    "train/loss_epoch",
    "train/f1_micro",
    "train/f1_macro",
)
SKIP_METRIC = "train/skipped_batches"  # logged with --model.nonfinite_loss skip only
COUNTERS = ("epoch", "step")
_ACCELERATORS = {"cpu": (), "cuda": ("cuda",), "gpu": ("cuda", "mps"), "mps": ("mps",), "tpu": ("tpu",)}
_COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_config(config: Namespace, subcommand: str) -> None:
    """Raise UserError for the first value of a parsed LightningCLI config that cannot work for `subcommand`."""
    trainer, model = config.get("trainer") or Namespace(), config.get("model") or Namespace()
    _check_accelerator(trainer)
    _check_trainer_numbers(trainer, subcommand)
    if subcommand in ("fit", "validate", "test"):  # the loss is computed: its options must hold
        _check_loss(model)
        _check_hub_extra(config.get("data") or Namespace())
    if subcommand == "fit":
        build_network(model.get("model"))
        _check_optimizer(model.get("optimizer"))
        _check_scheduler(model)
        _check_monitors(config)
    if subcommand == "predict":
        _check_predictions(config.get("predictions") or Namespace())


def check_config_files(argv: Sequence[str]) -> None:
    """Raise UserError naming file, line and column for a YAML file on the command line that does not parse.

    jsonargparse reads config files as strings, so its message says `in "<unicode string>", line 3`; every
    argument that names an existing .yaml/.yml file (after --config or a group such as --data) is read here first.
    """
    for value in argv:
        name = value.split("=", 1)[1] if value.startswith("--") and "=" in value else value
        path = Path(name)
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise user_error(f"config file is not UTF-8 text ({err.reason})", str(path), "save it as UTF-8") from None
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = " ".join(part for part in (err.problem, err.context and f"({err.context})") if part)
            raise user_error(f"invalid YAML: {problem}", where, "fix the syntax there") from None
        except yaml.YAMLError as err:
            raise user_error(f"invalid YAML: {' '.join(str(err).split())}", str(path), "fix the syntax") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise user_error(
                f"config file holds a {type(loaded).__name__}, not a mapping of options",
                str(path),
                "write it as `key: value` lines, e.g. `trainer:` then `  max_epochs: 3`",
            )


# ----- numbers -----


def _fail(key: str, value: Any, expected: str) -> UserError:
    return user_error(f"invalid configuration: {value!r} is out of range", key, f"expected {expected}")


def _number(value: Any) -> float | None:
    """The value as a float when it is a plain number (bools and anything else are left to their owners)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _require(key: str, value: Any, ok: Callable[[float], bool], expected: str) -> None:
    number = _number(value)
    if number is not None and not (math.isfinite(number) and ok(number)):
        raise _fail(key, value, expected)


def _check_trainer_numbers(trainer: Namespace, subcommand: str) -> None:
    if subcommand == "fit":
        _require("--trainer.max_epochs", trainer.get("max_epochs"), lambda v: v == -1 or v >= 0, "-1 (no limit) or 0+")
        _require("--trainer.max_steps", trainer.get("max_steps"), lambda v: v == -1 or v >= 0, "-1 (no limit) or 0+")
        for key in ("min_epochs", "min_steps"):
            _require(f"--trainer.{key}", trainer.get(key), lambda v: v >= 0, "0 or more")
        _require(
            "--trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches"), lambda v: v >= 1, "1 or more"
        )
        _require("--trainer.gradient_clip_val", trainer.get("gradient_clip_val"), lambda v: v >= 0, "0 or more")
        _require(
            "--trainer.check_val_every_n_epoch", trainer.get("check_val_every_n_epoch"), lambda v: v >= 1, "1 or more"
        )
        _require("--trainer.log_every_n_steps", trainer.get("log_every_n_steps"), lambda v: v >= 0, "0 or more")
        interval = trainer.get("val_check_interval")
        if isinstance(interval, float):
            _require("--trainer.val_check_interval", interval, lambda v: 0 < v <= 1, "a fraction in (0, 1]")
        else:
            _require("--trainer.val_check_interval", interval, lambda v: v >= 1, "1 or more batches")
    for stage in ("train", "val", "test", "predict"):
        key = f"limit_{stage}_batches"
        value = trainer.get(key)
        if isinstance(value, float):
            _require(f"--trainer.{key}", value, lambda v: 0 <= v <= 1, "a fraction in [0, 1] or a number of batches")
        else:
            _require(f"--trainer.{key}", value, lambda v: v >= 0, "0 or more batches")


def _check_loss(model: Namespace) -> None:
    _require("--model.label_smoothing", model.get("label_smoothing"), lambda v: 0 <= v < 1, "a number in [0, 1)")
    weights = model.get("class_weights")
    for i, weight in enumerate([] if weights == "balanced" else weights or []):
        number = _number(weight)
        if number is None or not (math.isfinite(number) and number > 0):
            raise user_error(
                f"invalid configuration: class weight {i} is {weight!r}",
                "--model.class_weights",
                "give every class a finite weight greater than 0, e.g. [1.0, 2.0]",
            )
    if model.get("compile_mode") not in _COMPILE_MODES:
        raise _fail("--model.compile_mode", model.get("compile_mode"), " or ".join(map(str, _COMPILE_MODES[1:])))


# The rules for arguments that torch's optimizers share (their constructors check the same ranges, but only once
# the data has been read and the model built).
_OPTIMIZER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v >= 0, "a learning rate >= 0, e.g. 0.001"),
    "eps": (lambda v: v >= 0, "a number >= 0, e.g. 1e-08"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1), e.g. 0.9"),
    "dampening": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "alpha": (lambda v: v >= 0, "a number >= 0"),
    "rho": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "lr_decay": (lambda v: v >= 0, "0 or more"),
    "initial_accumulator_value": (lambda v: v >= 0, "0 or more"),
}
_SCHEDULER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "warmup_fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1), e.g. 0.1"),
    "warmup_steps": (lambda v: v >= 0, "0 or more steps"),
    "min_lr_ratio": (lambda v: 0 <= v <= 1, "a fraction of the peak lr in [0, 1]"),
    "total_steps": (lambda v: v >= 1, "1 or more steps (or unset: the trainer's estimate)"),
}


def _check_optimizer(spec: Any) -> None:
    args = init_args(spec)
    for name, (ok, expected) in _OPTIMIZER_RULES.items():
        _require(f"--model.optimizer.{name}", args.get(name), ok, expected)
    betas = args.get("betas")
    if isinstance(betas, (list, tuple)):
        for i, beta in enumerate(betas):
            _require(
                f"--model.optimizer.betas[{i}]", beta, lambda v: 0 <= v < 1, "numbers in [0, 1), e.g. [0.9, 0.999]"
            )
    stand_in_optimizer(spec)  # any other argument the class itself rejects


def _check_scheduler(model: Namespace) -> None:
    spec = model.get("lr_scheduler")
    if spec is None:
        return
    args = init_args(spec)
    for name, (ok, expected) in _SCHEDULER_RULES.items():
        _require(f"--model.lr_scheduler.{name}", args.get(name), ok, expected)
    build_scheduler(spec, model.get("optimizer"))


# ----- extras, devices and metrics -----


def _check_hub_extra(data: Namespace) -> None:
    dataset = data.get("dataset")
    if isinstance(dataset, str) and dataset != DEMO:
        import_datasets(dataset)  # a missing `hub` extra fails before the run directory is made


def _check_accelerator(trainer: Namespace) -> None:
    name = trainer.get("accelerator")
    if not isinstance(name, str) or name == "auto":
        return
    from pytorch_lightning.accelerators import AcceleratorRegistry

    if name not in _ACCELERATORS and name not in AcceleratorRegistry:
        raise _fail("--trainer.accelerator", name, "auto, cpu, gpu, cuda, mps or tpu")
    wanted = [n for n in _ACCELERATORS.get(name, (name,)) if n in AcceleratorRegistry]
    if not wanted or any(AcceleratorRegistry[n]["accelerator"].is_available() for n in wanted):
        return
    cuda = torch.version.cuda or "none"
    raise user_error(
        f"invalid configuration: this machine has no {name.upper()} device (torch {torch.__version__}, CUDA build "
        f"{cuda}, {torch.cuda.device_count()} CUDA devices visible; only the CPU is available)",
        f"--trainer.accelerator {name}",
        "pass --trainer.accelerator cpu (or auto, which takes what there is)",
    )


def _check_monitors(config: Namespace) -> None:
    model = config.get("model") or Namespace()
    known = [*LOGGED_METRICS, *MULTI_LABEL_LOGGED_METRICS[1:], *COUNTERS]
    if model.get("nonfinite_loss") == "skip":
        known.append(SKIP_METRIC)
    monitors: list[tuple[str, Any]] = [
        ("--checkpoint.monitor", (config.get("checkpoint") or Namespace()).get("monitor"))
    ]
    if class_path(model.get("lr_scheduler")).endswith("ReduceLROnPlateau"):
        monitors.append(("--model.lr_scheduler_monitor", model.get("lr_scheduler_monitor")))
    callbacks = (config.get("trainer") or Namespace()).get("callbacks")
    for i, callback in enumerate(callbacks if isinstance(callbacks, list) else [callbacks]):
        if isinstance(callback, Namespace) and "monitor" in init_args(callback):
            name = class_path(callback).rpartition(".")[2]
            monitors.append((f"--trainer.callbacks[{i}] {name} monitor", init_args(callback)["monitor"]))
    for key, metric in monitors:
        if metric is None or metric in known:
            continue
        close = difflib.get_close_matches(str(metric), known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise user_error(
            f"invalid configuration: {metric!r} is never logged",
            key,
            f"{hint}monitor one of {', '.join(known)}",
        )


def _check_predictions(predictions: Namespace) -> None:
    _require("--predictions.top_k", predictions.get("top_k"), lambda v: v >= 1, "1 or more")
    _require("--predictions.threshold", predictions.get("threshold"), lambda v: 0 <= v <= 1, "a number from 0 to 1")
    keep = predictions.get("keep_columns") or []
    repeated = sorted({name for name in keep if list(keep).count(name) > 1})
    if repeated:
        raise user_error(
            f"invalid configuration: {', '.join(repeated)} listed twice", "--predictions.keep_columns", "name it once"
        )
