"""Hugging Face hub datasets (`--data.dataset ag_news`) as a `TableSource`: after loading, the local-file path."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from textcls.data.errors import DataError, user_error
from textcls.data.sources import TableSource

INSTALL_HUB = "pip install 'textcls[hub]'"


def load_hub_split(name: str, config: str | None, split: str, label_column: str | None) -> TableSource:
    """One split, memory-mapped from the `datasets` cache; integer class labels become their names."""
    datasets = import_datasets(name)
    title = f"hub dataset '{name}'" + (f" ({config})" if config else "") + f" split '{split}'"
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # connection, missing dataset, bad split: all end the same way for the user
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        hint = (
            f"It is downloaded on first use into the Hugging Face cache (HF_HOME): run once with network access, "
            f"or run `python -c \"import datasets; datasets.load_dataset('{name}')\"` where the hub is reachable and "
            "copy that cache here, or export the data to CSV/Parquet and pass --data.train_file."
        )
        if "split" in reason.lower() and "available" in reason.lower():
            hint = "Set --data.train_split / val_split / test_split to split names the dataset has."
        raise DataError(f"could not load {title}: {type(err).__name__}: {reason}. {hint}") from None
    # A split from load_dataset maps its rows directly: only select, shuffle and filter add an indices mapping.
    table = dataset.data.table
    feature = dataset.features.get(label_column) if label_column else None
    if label_column and isinstance(feature, datasets.ClassLabel):
        table = _label_names(table, label_column, feature.names)
    elif label_column and isinstance(inner := getattr(feature, "feature", None), datasets.ClassLabel):  # a sequence
        table = _label_list_names(table, label_column, inner.names)
    return TableSource(table, title, fingerprint=f"hub:{name}:{config}:{split}:{_cache_state(dataset)}")


def _cache_state(dataset: Any) -> str:
    """What the rows were read from: the Arrow cache files with their sizes and times (a new download changes them),
    or for an in-memory dataset its size and version."""
    files = []
    for entry in dataset.cache_files:
        stat = os.stat(entry["filename"])
        files.append(f"{entry['filename']}:{stat.st_size}:{stat.st_mtime_ns}")
    return ",".join(files) or f"{dataset.num_rows}:{dataset.info.version}"


def import_datasets(name: str) -> Any:
    """The `datasets` module, or the one error line naming the extra that installs it."""
    try:
        import datasets  # slow to import and an extra: only hub users pay for it
    except ImportError:
        raise user_error(
            "hub datasets need the Hugging Face `datasets` library, which is not installed",
            f"--data.dataset {name}",
            f"{INSTALL_HUB}, or pass local files with --data.train_file",
        ) from None
    return datasets


def _label_names(table: pa.Table, column: str, names: list[str]) -> pa.Table:
    """Class ids -> a dictionary column of names (no copy of the strings per row); -1 (no label) -> null."""
    dictionary = pa.array(names, pa.string())
    chunks = []
    for chunk in table.column(column).chunks:
        ids = pc.if_else(pc.less(chunk, 0), pa.scalar(None, chunk.type), chunk).cast(pa.int32())
        chunks.append(pa.DictionaryArray.from_arrays(ids, dictionary))
    position = table.column_names.index(column)
    return table.set_column(position, column, pa.chunked_array(chunks, pa.dictionary(pa.int32(), pa.string())))


def _label_list_names(table: pa.Table, column: str, names: list[str]) -> pa.Table:
    """Lists of class ids (a multi-label hub column, e.g. go_emotions) -> lists of their names."""
    dictionary = pa.array(names, pa.string())
    chunks = []
    for chunk in table.column(column).chunks:
        chunk = chunk.cast(pa.list_(pa.int64()))  # large lists and other id widths alike
        named = dictionary.take(pc.list_flatten(chunk))
        offsets = pc.subtract(chunk.offsets, chunk.offsets[0])
        chunks.append(pa.ListArray.from_arrays(offsets, named, mask=chunk.is_null()))
    position = table.column_names.index(column)
    return table.set_column(position, column, pa.chunked_array(chunks, pa.list_(pa.string())))
