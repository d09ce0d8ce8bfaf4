"""Data: file sources, tokenizer and vocabulary, batching, the synthetic demo, and the DataModule."""

from textcls.data.datamodule import TextDataModule
from textcls.data.errors import DataError

__all__ = ["DataError", "TextDataModule"]
