"""Map-style dataset over Arrow token lists, and the padding that turns a list of rows into a batch.

Rows stay in the Arrow buffers (one flat int32 array plus offsets); a batch is cut out and padded with numpy in
`__getitems__`, which the DataLoader calls once per batch instead of once per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset


class TokenizedDataset(Dataset):
    """Token id lists with optional integer labels; items are `(row_index, ids, label)`.

    Args:
        ids: one list of token ids per row.
        labels: class index per row, or None for unlabelled (prediction) data.
        pad_id: id used to pad a batch to its longest row.
    """

    def __init__(self, ids: pa.ListArray | pa.ChunkedArray, labels: np.ndarray | None, pad_id: int = 0) -> None:
        if isinstance(ids, pa.ChunkedArray):
            ids = pa.concat_arrays(ids.chunks) if ids.num_chunks else pa.array([], pa.list_(pa.int32()))
        offsets = ids.offsets.to_numpy()
        self.offsets = (offsets - offsets[0]).astype(np.int64)
        self.values = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        self.labels = labels
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        starts, ends = self.offsets[index], self.offsets[index + 1]
        # At least one column, so an empty text still yields a (padding-only) row the models can handle.
        width = max(int((ends - starts).max(initial=0)), 1)
        batch = np.full((len(index), width), self.pad_id, dtype=np.int64)
        for row, (start, end) in enumerate(zip(starts, ends)):
            batch[row, : end - start] = self.values[start:end]
        out = {"input_ids": torch.from_numpy(batch), "index": torch.from_numpy(index)}
        if self.labels is not None:
            out["labels"] = torch.from_numpy(self.labels[index].astype(np.int64))
        return out


def passthrough_collate(batch: Any) -> Any:
    """`__getitems__` already returns a padded batch; a module-level function so worker processes can pickle it."""
    return batch
