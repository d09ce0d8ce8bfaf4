"""Label names in a stable order, and the mapping of label strings to class indices."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textcls.data.errors import DataError


def label_order(labels: pa.ChunkedArray | pa.Array) -> list[str]:
    """Distinct labels, numerically sorted when every label is an integer ("2" < "10"), else alphabetically."""
    names = pc.unique(labels).to_pylist()
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def encode_labels(labels: pa.ChunkedArray | pa.Array, names: list[str], source: str) -> np.ndarray:
    """Class index per row; a label outside `names` is an error that lists the unknown ones."""
    index = pc.index_in(labels, value_set=pa.array(names, pa.string()))
    if index.null_count:
        unknown = pc.unique(pc.filter(labels, pc.is_null(index))).to_pylist()
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise DataError(
            f"{source}: {len(unknown)} label(s) never seen in the training data: {shown}. "
            f"Known labels: {', '.join(names[:20])}. Fix the labels or add examples of them to the training data."
        )
    return index.to_numpy(zero_copy_only=False).astype(np.int64)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): `fraction` of each class goes to val, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        val_parts.append(members[: int(round(fraction * len(members)))])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.array([], dtype=np.int64)
    if len(val) == 0 or len(val) == len(labels):
        raise DataError(
            f"val_fraction={fraction} leaves an empty training or validation split of {len(labels)} rows; "
            "change --data.val_fraction or pass --data.val_file."
        )
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    return train, val
