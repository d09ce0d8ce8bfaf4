"""Reading a checkpoint, which is untrusted input: safely, then the classes it may name and whether its weights fit.

`torch.load(weights_only=True)` (read_checkpoint) keeps a file from running code while it is read. What the
file then says is still only data: the class paths in its hyper-parameters are imported by whoever builds the model,
optimizer and schedule, so each one is checked here first, against textcls's own networks and schedule, torch's
optimizers and schedulers, the Schedule-Free and Lion optimizers textcls depends on, and whatever the user names on
the command line or in a config file. Like `transformers`' `trust_remote_code=False`, nothing outside that list is
imported unless the user asks for it by name.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textcls.errors import UserError
from textcls.records import thresholds_problem

# Lightning stores `datamodule.state_dict()` under the DataModule's class name (tested against TextDataModule).
DATA_STATE_KEY = "TextDataModule"
# The multi-label module's buffer of per-label decision thresholds (in its state_dict, so every checkpoint has it).
THRESHOLDS_KEY = "thresholds"

#: classes of textcls itself that a checkpoint may name
TEXTCLS_CLASSES = ("textcls.models.TextCNN", "textcls.models.MLP", "textcls.optim.WarmupCosine")
#: optimizers of textcls's own dependencies (`schedulefree`, `lion-pytorch`) that a checkpoint may name, by exact path
DEPENDENCY_OPTIMIZERS = (
    "schedulefree.AdamWScheduleFree",
    "schedulefree.SGDScheduleFree",
    "schedulefree.RAdamScheduleFree",
    "lion_pytorch.Lion",
)
#: module of every class in it (the key) whose classes a checkpoint may name when they derive from the value
TORCH_MODULES: dict[str, tuple[type, ...]] = {
    "torch.optim": (torch.optim.Optimizer,),
    "torch.optim.lr_scheduler": (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau),
}
# The hyper-parameters whose plain string values jsonargparse resolves as import paths (class and callable types).
_CLASS_KEYS = ("model", "optimizer", "lr_scheduler")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, checked to be a textcls checkpoint; any problem is a `DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist or is not a file; pass the path of a .ckpt file.")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol it does not expect: the error says more
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated, foreign or unsafe file
        raise UserError(f"'{path}' is not a readable checkpoint ({_load_failure(err, path)}).") from None
    if not isinstance(checkpoint, dict):
        raise UserError(f"'{path}' is not a textcls checkpoint (it holds a {type(checkpoint).__name__}, not a dict).")
    missing = [key for key in ("state_dict", "hyper_parameters", DATA_STATE_KEY) if key not in checkpoint]
    if missing:
        raise UserError(f"'{path}' is not a textcls checkpoint: it has no {', '.join(map(repr, missing))}.")
    state = checkpoint[DATA_STATE_KEY]
    if not isinstance(state, dict) or not isinstance(state.get("tokenizer"), str) or not state.get("label_names"):
        raise UserError(f"'{path}' is not a textcls checkpoint: {DATA_STATE_KEY!r} lacks the tokenizer or label names.")
    return checkpoint


def _load_failure(err: Exception, path: Path) -> str:
    """Why torch.load(weights_only=True) refused the file, and what to do, in words a user can act on."""
    message = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", message)
    with open(path, "rb") as handle:
        pickle_stream = handle.read(1) == b"\x80"  # a pickle's protocol opcode (a zip checkpoint names its globals)
    if "Weights only load failed" in message and (found or pickle_stream):
        named = f" ({found.group(1)})" if found else ""
        return (
            f"it holds pickled Python objects{named}, which safe loading (torch.load weights_only=True) refuses, "
            "because unpickling them could run code; use a checkpoint written by `textcls fit`, from a source you trust"
        )
    # Anything else torch raises (EOFError, UnpicklingError, zip errors, IndexError on a text file ...) means the same.
    return "the file is truncated or not a PyTorch checkpoint; pass a complete .ckpt file written by `textcls fit`"


def load_checkpoint(path: str | Path, trusted: Collection[str] = ()) -> dict[str, Any]:
    """Read a textcls checkpoint safely and check it before anything uses it: the classes it names (see
    `check_classes`) and its own consistency (see `check_consistency`). Every command that reads one comes here."""
    checkpoint = read_checkpoint(path)
    check_classes(checkpoint, path, trusted)
    check_consistency(checkpoint, path)
    return checkpoint


def named_classes(hparams: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, class path) for every class the hyper-parameters name: `class_path` values at any depth, and the plain
    strings given to the class-typed arguments."""

    def walk(value: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "class_path":
                    yield where, str(item)
                else:
                    yield from walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                yield from walk(item, f"{where}[{i}]")

    for key, value in hparams.items():
        if key in _CLASS_KEYS and isinstance(value, str):
            yield f"model.{key}", value
        else:
            yield from walk(value, f"model.{key}")


def is_allowed_class(class_path: str, trusted: Collection[str] = ()) -> bool:
    """Whether a checkpoint may name this class: textcls's own, torch's optimizers and schedulers (checked without
    importing anything new: torch.optim is loaded already), the dependency optimizers by their exact path (a string
    comparison: nothing of those packages is imported to decide), or one the user named themselves."""
    if class_path in trusted or class_path in TEXTCLS_CLASSES or class_path in DEPENDENCY_OPTIMIZERS:
        return True
    module_name, _, name = class_path.rpartition(".")
    bases = TORCH_MODULES.get(module_name)
    if bases is None or name.startswith("_"):
        return False
    module = torch.optim if module_name == "torch.optim" else torch.optim.lr_scheduler
    candidate = getattr(module, name, None)
    return isinstance(candidate, type) and issubclass(candidate, bases)


def check_classes(checkpoint: Mapping[str, Any], path: str | Path, trusted: Collection[str] = ()) -> None:
    """Refuse a checkpoint that names a class outside the allowlist, before any of it is imported."""
    for where, class_path in named_classes(checkpoint.get("hyper_parameters") or {}):
        if not is_allowed_class(class_path, trusted):
            raise UserError(
                f"checkpoint '{path}' names the class {class_path!r} ({where}), which textcls does not import from a "
                "checkpoint (only its own networks and schedule and torch's optimizers and schedulers): if you trust "
                f"that code, name it yourself (e.g. --{where} {class_path}); otherwise do not use this file."
            )


def check_consistency(checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """The checkpoint's own record must agree with itself: distinct label names, a classifier with one output per
    label, finite weights."""
    names = list(checkpoint[DATA_STATE_KEY]["label_names"])
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if len(names) < 2 or duplicates:
        reason = f"duplicate label names {duplicates}" if duplicates else f"fewer than two labels ({names})"
        raise UserError(f"checkpoint '{path}' is inconsistent: {reason}; retrain it with `textcls fit`.")
    max_length = checkpoint[DATA_STATE_KEY].get("max_length", 1)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise UserError(
            f"checkpoint '{path}' is inconsistent: its recorded max_length is {max_length!r}, not a positive number "
            "of tokens; retrain it with `textcls fit`."
        )
    spec = (checkpoint.get("hyper_parameters") or {}).get("model")
    classes = spec.get("init_args", {}).get("num_classes") if isinstance(spec, Mapping) else None
    if isinstance(classes, int) and classes != len(names):
        raise UserError(
            f"checkpoint '{path}' is inconsistent: its network has {classes} outputs but it names {len(names)} labels "
            f"({', '.join(map(str, names))}); retrain it with `textcls fit`."
        )
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping) or not state:
        raise UserError(f"checkpoint '{path}' has no weights (empty state_dict); pass a checkpoint of `textcls fit`.")
    _check_multi_label(checkpoint, state, names, path)
    for key, tensor in state.items():
        if not torch.is_tensor(tensor):
            raise UserError(f"checkpoint '{path}' is damaged: its weight {key!r} is not a tensor.")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(
                f"checkpoint '{path}' holds non-finite weights (NaN or inf in {key!r}); it would predict nothing "
                "meaningful. Use an earlier checkpoint of that run, or retrain with a lower --model.optimizer.lr."
            )


def _check_multi_label(checkpoint: Mapping[str, Any], state: Mapping[str, Any], names: list, path: str | Path) -> None:
    """A multi-label checkpoint says so in its hyper-parameters and its data state alike, and carries one decision
    threshold from 0 to 1 per label: prediction, export and serving trust them."""
    flag = (checkpoint.get("hyper_parameters") or {}).get("multi_label", False)
    data_flag = checkpoint[DATA_STATE_KEY].get("multi_label", False)
    if not isinstance(flag, bool) or not isinstance(data_flag, bool) or flag != data_flag:
        raise UserError(
            f"checkpoint '{path}' is inconsistent: its model says multi_label={flag!r} but its data settings say "
            f"{data_flag!r}; retrain it with `textcls fit`."
        )
    if not flag:
        return
    tensor = state.get(THRESHOLDS_KEY)
    if not torch.is_tensor(tensor) or not tensor.is_floating_point() or tensor.dim() != 1:
        found = f"{tuple(tensor.shape)} {tensor.dtype}" if torch.is_tensor(tensor) else type(tensor).__name__
        raise UserError(
            f"checkpoint '{path}' is a multi-label model without its per-label thresholds ({THRESHOLDS_KEY!r}: "
            f"{found}); retrain it with `textcls fit`."
        )
    problem = thresholds_problem(tensor.tolist(), len(names))
    if problem is not None:
        raise UserError(f"checkpoint '{path}' is inconsistent: {problem}; retrain it with `textcls fit`.")


def check_weights_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path, prefix: str) -> None:
    """The checkpoint's weights under `prefix` must have the names and shapes of `model`'s, or one line says which."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k[len(prefix) :]: tuple(v.shape) for k, v in state_dict.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shared = sorted(set(found) & set(expected))
    resized = [f"{k} {found[k]} vs {expected[k]}" for k in shared if found[k] != expected[k]]
    if missing or unexpected or resized:
        parts = [f"missing {_few(missing)}" if missing else "", f"extra {_few(unexpected)}" if unexpected else ""]
        parts.append(f"shapes differ: {_few(resized)}" if resized else "")
        raise UserError(
            f"checkpoint '{path}' does not fit the network this command builds ({type(model).__name__}: "
            f"{'; '.join(p for p in parts if p)}): it was trained with another network or vocabulary. Pass the "
            "checkpoint's own settings (drop the --model / --data options that differ), or start a new fit."
        )


def _few(items: Sequence[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def load_checkpoint_state(path: str | Path) -> dict[str, Any]:
    """The tokenizer and label names of a checked textcls checkpoint (for --data.tokenizer_file)."""
    state: dict[str, Any] = load_checkpoint(path)[DATA_STATE_KEY]
    return state
