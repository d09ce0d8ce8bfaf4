"""Data: file sources, tokenizer and vocabulary, batching, the synthetic demo, and the DataModule."""

from typing import TYPE_CHECKING, Any

from textcls.data.errors import DataError

__all__ = ["DataError", "TextDataModule"]

if TYPE_CHECKING:
    from textcls.data.datamodule import TextDataModule


def __getattr__(name: str) -> Any:
    # Imported on first use: the DataModule pulls in Lightning, which the prediction API and the server never need.
    if name == "TextDataModule":
        from textcls.data.datamodule import TextDataModule

        return TextDataModule
    raise AttributeError(f"module 'textcls.data' has no attribute {name!r}")
