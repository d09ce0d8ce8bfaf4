"""Label names in a stable order, and seeded stratified selection of validation rows."""

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


def stratified_val_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the rows that go to validation: `fraction` of each class, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        is_val[members[: round(fraction * len(members))]] = True
    count = int(is_val.sum())
    if count == 0 or count == len(labels):
        raise DataError(
            f"val_fraction={fraction} leaves an empty training or validation split of {len(labels)} rows; "
            "change --data.val_fraction or pass --data.val_file."
        )
    return is_val


def keep_at_most(mask: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """`mask` with all but a seeded random `limit` of its True entries cleared (row order is kept)."""
    chosen = np.flatnonzero(mask)
    if limit is None or len(chosen) <= limit:
        return mask
    out = np.zeros_like(mask)
    out[np.sort(np.random.default_rng(seed).choice(chosen, size=limit, replace=False))] = True
    return out
