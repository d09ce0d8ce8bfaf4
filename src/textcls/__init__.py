"""textcls: text classification with PyTorch Lightning, MLP and TextCNN models and a configurable Adam."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here
__all__ = ["load_classifier"]

if TYPE_CHECKING:
    from textcls.inference import load_classifier


def __getattr__(name: str) -> Any:
    # Imported on first use: `import textcls` (and every `textcls` command) must not pay for torch + pyarrow
    # just because the package offers a prediction API.
    if name == "load_classifier":
        from textcls.inference import load_classifier

        return load_classifier
    raise AttributeError(f"module 'textcls' has no attribute {name!r}")
