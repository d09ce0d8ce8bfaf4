"""Configuration checks that build the configured classes (optimizer, scheduler, network) on stand-in arguments, so
their own constructors reject a bad value before any data is read; a class spec is a jsonargparse Namespace of
class_path and init_args."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from jsonargparse import Namespace
from torch import nn

from textcls.errors import user_error

# Classes whose constructors may be called on stand-in arguments here: their validation is all this needs, and
# nothing outside them is imported that parsing has not imported already.
_TRUSTED_PREFIXES = ("torch.optim.", "textcls.")


def build_scheduler(spec: Any, optimizer_spec: Any) -> None:
    """Build the scheduler over the stand-in optimizer, so its constructor checks its arguments now."""
    cls = _trusted_class(spec)
    optimizer = stand_in_optimizer(optimizer_spec)
    if cls is None or optimizer is None:
        return
    args = init_args(spec)
    if "total_steps" in args and args.get("total_steps") is None:
        args["total_steps"] = 1000  # textcls fills it in from the trainer; any length validates the rest
    try:
        cls(optimizer, **args)
    except ValueError as err:
        raise user_error(
            f"invalid configuration: {class_path(spec)} rejects its arguments ({_one_line(err)})",
            "--model.lr_scheduler",
            "fix the value it names",
        ) from None


def stand_in_optimizer(spec: Any) -> torch.optim.Optimizer | None:
    """The optimizer over one stand-in parameter, so its own argument checks run now (None: not ours to build)."""
    cls = _trusted_class(spec)
    if cls is None:
        return None
    try:
        return cls([nn.Parameter(torch.zeros(1))], **init_args(spec))
    except ValueError as err:
        raise user_error(
            f"invalid configuration: {class_path(spec)} rejects its arguments ({_one_line(err)})",
            "--model.optimizer",
            "fix the value it names",
        ) from None
    except (TypeError, RuntimeError):
        return None  # a stand-in it cannot take (not an argument problem): the real call decides


def build_network(spec: Any) -> None:
    """Build the network on the meta device (no memory, no data) so its constructor checks its options now."""
    cls = _trusted_class(spec)
    if cls is None:
        return
    try:
        with torch.device("meta"):
            cls(**init_args(spec))
    except ValueError as err:
        raise user_error(
            f"invalid configuration: {_one_line(err)}", f"--model.model {class_path(spec)}", "fix the value it names"
        ) from None
    except (TypeError, RuntimeError, NotImplementedError):
        return  # the sizes linked from the data are placeholders here; the real build reports its own problems


def class_path(spec: Any) -> str:
    if isinstance(spec, Namespace):
        return str(spec.get("class_path") or "")
    if isinstance(spec, type):
        return f"{spec.__module__}.{spec.__qualname__}"
    return ""


def init_args(spec: Any) -> dict[str, Any]:
    args = spec.get("init_args") if isinstance(spec, Namespace) else None
    return dict(args.as_dict() if isinstance(args, Namespace) else args or {})


def _trusted_class(spec: Any) -> type | None:
    path = class_path(spec)
    if not path.startswith(_TRUSTED_PREFIXES):
        return None
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) else None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]
