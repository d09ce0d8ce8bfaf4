"""A memory-mapped dataset of token lists, and the length-bucketed batch sampler used for training.

Rows stay in the cache's Arrow IPC file; a batch is cut out and padded with numpy in `__getitems__`, which the
DataLoader calls once per batch instead of once per row.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import BatchSampler, Dataset, RandomSampler, Sampler, SequentialSampler

#: after serving this many rows, hand the map's pages back to the page cache (see `TokenizedDataset`). Rows are read
#: in random order, so each can fault in its own pages (the kernel maps up to 64 KB around a fault): keep it small.
#: Dropping the pages of a mapping with few resident ones costs microseconds, against ~1 ms to pad a batch.
RELEASE_EVERY_ROWS = 1024


class TokenizedDataset(Dataset):
    """Rows of an Arrow IPC file with a `ids` (list<int32>) and optionally a `label` (int32) column.

    Items are dicts of `input_ids` (right-padded with `pad_id`), `index` (the row number) and `labels`.
    The file is memory-mapped; touched pages would count toward this process's resident memory for as long as the
    mapping lives, so every `RELEASE_EVERY_ROWS` rows the pages are dropped from the process (`MADV_DONTNEED`; they
    stay in the OS page cache, so re-reading them costs no disk I/O). That keeps RSS flat however large the file is.

    Args:
        path: an `.arrow` file written by the DataModule.
        pad_id: id used to pad a batch to its longest row.
    """

    def __init__(self, path: str | Path, pad_id: int = 0) -> None:
        self.path, self.pad_id = Path(path), pad_id
        self._open()

    def _open(self) -> None:
        with self.path.open("rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        reader = pa.ipc.open_file(pa.py_buffer(self._map))
        self._offsets, self._values, self._labels = [], [], []
        lengths = []
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            ids = batch.column("ids")
            offsets = ids.offsets.to_numpy()
            self._offsets.append(offsets)
            self._values.append(ids.values.to_numpy())
            lengths.append(np.diff(offsets).astype(np.int32))
            if "label" in batch.schema.names:
                self._labels.append(batch.column("label").to_numpy())
        self.has_labels = "label" in reader.schema.names
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
        self._starts = np.cumsum([0] + [len(o) - 1 for o in self._offsets])
        self._served = 0

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes started with "spawn" re-open the file instead of pickling the map.
        return {"path": self.path, "pad_id": self.pad_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.pad_id = state["path"], state["pad_id"]
        self._open()

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def labels(self) -> np.ndarray | None:
        """All labels as one array (a copy; for tests and small splits)."""
        return np.concatenate(self._labels).astype(np.int64) if self.has_labels and self._labels else None

    def row(self, index: int) -> np.ndarray:
        chunk = int(np.searchsorted(self._starts, index, side="right") - 1)
        local = index - int(self._starts[chunk])
        offsets = self._offsets[chunk]
        return self._values[chunk][offsets[local] : offsets[local + 1]]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        chunks = np.searchsorted(self._starts, index, side="right") - 1
        local = index - self._starts[chunks]
        # At least one column, so an empty text still yields a (padding-only) row the models can handle.
        width = max(int(self.lengths[index].max(initial=0)), 1)
        batch = np.full((len(index), width), self.pad_id, dtype=np.int64)
        labels = np.empty(len(index), dtype=np.int64)
        for row, (chunk, i) in enumerate(zip(chunks.tolist(), local.tolist(), strict=True)):
            offsets = self._offsets[chunk]
            start, end = offsets[i], offsets[i + 1]
            batch[row, : end - start] = self._values[chunk][start:end]
            if self.has_labels:
                labels[row] = self._labels[chunk][i]
        out = {"input_ids": torch.from_numpy(batch), "index": torch.from_numpy(index)}
        if self.has_labels:
            out["labels"] = torch.from_numpy(labels)
        self._served += len(index)
        if self._served >= RELEASE_EVERY_ROWS:
            self._served = 0
            self._map.madvise(mmap.MADV_DONTNEED)
        return out


class BucketBatchSampler(BatchSampler):
    """Batches of similar lengths, in random order: less padding, same randomness across epochs as plain shuffling.

    Each epoch the rows given by `sampler` are shuffled, cut into pools of `pool_batches` batches, each pool is
    sorted by length and cut into batches, and the batches of all pools are shuffled. Under DDP Lightning rebuilds
    this sampler with a `DistributedSampler` as `sampler` (its `__init__` arguments are recorded), so each rank
    buckets only its own disjoint shard, and every rank gets the same number of batches.

    Args:
        sampler: the rows to draw from (a `SequentialSampler` over the dataset, or Lightning's `DistributedSampler`).
        batch_size: rows per batch.
        drop_last: drop the last, smaller batch.
        lengths: token count per row of the dataset.
        pool_batches: batches per sorting pool; larger pools pad less but mix lengths less within an epoch.
        seed: the shuffling seed (combined with the epoch number).
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        lengths: np.ndarray | None = None,
        pool_batches: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if lengths is None:
            raise ValueError("BucketBatchSampler needs the row lengths")
        self.lengths, self.pool_batches, self.seed = lengths, max(int(pool_batches), 1), seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at every epoch start (and forwards it to a `DistributedSampler` via `sampler`)."""
        self.epoch = epoch
        set_inner_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_inner_epoch):
            set_inner_epoch(epoch)

    def _indices(self) -> np.ndarray:
        if isinstance(self.sampler, (SequentialSampler, RandomSampler)):
            return np.arange(len(self.sampler), dtype=self._dtype)  # no Python list of every row
        return np.fromiter(iter(self.sampler), dtype=self._dtype)

    @property
    def _dtype(self) -> type:
        return np.int32 if len(self.lengths) < 2**31 else np.int64  # half the memory per epoch at 10M rows

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        indices = rng.permutation(self._indices())
        pool = self.pool_batches * self.batch_size
        for start in range(0, len(indices), pool):
            part = indices[start : start + pool]
            # Stable sort of a random permutation: equal lengths stay in random order.
            indices[start : start + len(part)] = part[np.argsort(self.lengths[part], kind="stable")]
        starts = np.arange(0, len(indices), self.batch_size)
        if self.drop_last and len(indices) % self.batch_size:
            starts = starts[:-1]
        for start in rng.permutation(starts).tolist():
            yield indices[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def padding_fraction(lengths: np.ndarray, batches: list[list[int]] | Iterator[list[int]]) -> float:
    """Share of the padded batch cells that are padding (each batch padded to its longest row, at least 1)."""
    real = padded = 0
    for batch in batches:
        rows = lengths[np.asarray(batch)]
        real += int(rows.sum())
        padded += max(int(rows.max(initial=0)), 1) * len(rows)
    return 1 - real / padded if padded else 0.0


def passthrough_collate(batch: Any) -> Any:
    """`__getitems__` already returns a padded batch; a module-level function so worker processes can pickle it."""
    return batch
