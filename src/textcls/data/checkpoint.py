"""Reading a textcls checkpoint safely: `torch.load(weights_only=True)` only, and one clear error for anything that
is not a complete textcls checkpoint. Shared by the CLI, the DataModule (`--data.tokenizer_file x.ckpt`) and the
Python API."""

from __future__ import annotations

import pickle
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
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated, foreign or unsafe file
        message = str(err)
        if "Unsupported global" in message:
            reason = "it contains pickled Python objects, which are never loaded, for safety"
        elif (
            isinstance(err, (EOFError, pickle.UnpicklingError))
            or "zip archive" in message
            or "central directory" in message
        ):
            reason = "the file is truncated or not a PyTorch checkpoint"
        else:
            reason = f"{type(err).__name__}: {message.strip().splitlines()[0][:120] if message.strip() else ''}"
        raise DataError(
            f"'{path}' is not a readable checkpoint ({reason}); pass a complete .ckpt file written by `textcls fit`."
        ) from None
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
