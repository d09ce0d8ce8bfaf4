"""Reading a textcls checkpoint safely: `torch.load(weights_only=True)` only, and one clear error for anything that
is not a complete textcls checkpoint. Shared by the CLI, the DataModule (`--data.tokenizer_file x.ckpt`) and the
Python API."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from textcls.data.errors import DataError

# Lightning stores `datamodule.state_dict()` under the DataModule's class name (tested against TextDataModule).
DATA_STATE_KEY = "TextDataModule"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, checked to be a textcls checkpoint; any problem is a `DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint '{path}' does not exist or is not a file; pass the path of a .ckpt file.")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol it does not expect: the error says more
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated, foreign or unsafe file
        raise DataError(f"'{path}' is not a readable checkpoint ({_load_failure(err)}).") from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"'{path}' is not a textcls checkpoint (it holds a {type(checkpoint).__name__}, not a dict).")
    missing = [key for key in ("state_dict", "hyper_parameters", DATA_STATE_KEY) if key not in checkpoint]
    if missing:
        raise DataError(f"'{path}' is not a textcls checkpoint: it has no {', '.join(map(repr, missing))}.")
    state = checkpoint[DATA_STATE_KEY]
    if not isinstance(state, dict) or not isinstance(state.get("tokenizer"), str) or not state.get("label_names"):
        raise DataError(f"'{path}' is not a textcls checkpoint: {DATA_STATE_KEY!r} lacks the tokenizer or label names.")
    return checkpoint


def load_checkpoint_state(path: str | Path) -> dict[str, Any]:
    """The tokenizer and label names stored in a textcls checkpoint."""
    state: dict[str, Any] = read_checkpoint(path)[DATA_STATE_KEY]
    return state


def _load_failure(err: Exception) -> str:
    """Why torch.load(weights_only=True) refused the file, and what to do, in words a user can act on."""
    message = str(err)
    if "Weights only load failed" in message or "Unsupported global" in message:
        found = re.search(r"GLOBAL ([\w.]+)", message)
        named = f" ({found.group(1)})" if found else ""
        return (
            f"it holds pickled Python objects{named}, which safe loading (torch.load weights_only=True) refuses, "
            "because unpickling them could run code; use a checkpoint written by `textcls fit`, from a source you trust"
        )
    # Anything else torch raises (EOFError, UnpicklingError, zip errors, IndexError on a text file ...) means the same.
    return "the file is truncated or not a PyTorch checkpoint; pass a complete .ckpt file written by `textcls fit`"
