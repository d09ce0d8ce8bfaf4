"""A memory-mapped dataset of token lists, and the length-bucketed batch sampler used for training.

Rows stay in the cache's Arrow IPC file; a batch is cut out and padded with numpy in `__getitems__`, which the
DataLoader calls once per batch instead of once per row.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import BatchSampler, Dataset, RandomSampler, Sampler, SequentialSampler

from textcls.data.labelsets import LabelSets


class TokenizedDataset(Dataset):
    """Rows of an Arrow IPC file with a `ids` (list<int32>) and optionally a `label` (int32) column.

    Items are dicts of `input_ids` (right-padded with `pad_id`), `index` (the row number) and `labels`.
    The file is memory-mapped once to find every row's byte position, then rows are read with `os.pread`. Reading
    random rows through the map would keep each touched page in this process's resident memory, and the kernel maps
    up to 64 KB around every page fault: one epoch of shuffled batches made the whole file (0.9 GB at 10 M rows)
    resident. `pread` copies only the row's bytes from the OS page cache, so RSS stays flat however large the file.
    Kept in memory per row: byte position (8 bytes), length (4) and label (4).

    Args:
        path: an `.arrow` file written by the DataModule.
        pad_id: id used to pad a batch to its longest row.
    """

    def __init__(self, path: str | Path, pad_id: int = 0) -> None:
        self.path, self.pad_id = Path(path), pad_id
        self._open()

    def _open(self) -> None:
        with self.path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            # A function of its own, so that every Arrow view into the map is gone before the map closes.
            self.has_labels, self.positions, self.lengths, self._labels, self.label_sets = _row_index(mapped)
        self._fd: int | None = os.open(self.path, os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]
            self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes started with "spawn" re-open the file instead of pickling the row index.
        return {"path": self.path, "pad_id": self.pad_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.pad_id = state["path"], state["pad_id"]
        self._open()

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def labels(self) -> np.ndarray | None:
        """All labels as one int64 array (a copy), or None for unlabelled or multi-label data (see `label_sets`)."""
        return self._labels.astype(np.int64) if self.has_labels and self.label_sets is None else None

    @property
    def num_labels(self) -> int | None:
        """The number of labels of multi-label data (its rows' `labels` are multi-hot of this width), else None."""
        return self.label_sets[1] if self.label_sets is not None else None

    def label_counts(self, num_classes: int) -> np.ndarray:
        """How many rows have each label (multi-label) or class."""
        if self.label_sets is not None:
            return self.label_sets[0].counts(num_classes)
        return np.bincount(self._labels, minlength=num_classes)

    def row(self, index: int) -> np.ndarray:
        """The token ids of one row."""
        count = int(self.lengths[index])
        assert self._fd is not None, "the dataset's file was closed"
        return np.frombuffer(os.pread(self._fd, 4 * count, int(self.positions[index])), dtype=np.int32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[index]
        # At least one column, so an empty text still yields a (padding-only) row the models can handle.
        width = max(int(lengths.max(initial=0)), 1)
        batch = np.full((len(index), width), self.pad_id, dtype=np.int64)
        fd = self._fd
        assert fd is not None, "the dataset's file was closed"
        for row, (position, count) in enumerate(zip(self.positions[index].tolist(), lengths.tolist(), strict=True)):
            if count:
                batch[row, :count] = np.frombuffer(os.pread(fd, 4 * count, position), dtype=np.int32)
        out = {"input_ids": torch.from_numpy(batch), "index": torch.from_numpy(index)}
        if self.label_sets is not None:
            sets, width = self.label_sets
            out["labels"] = torch.from_numpy(sets.take(index).multi_hot(width))
        elif self.has_labels:
            out["labels"] = torch.from_numpy(self._labels[index].astype(np.int64))
        return out


def _row_index(
    mapped: mmap.mmap,
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, tuple[LabelSets, int] | None]:
    """(has labels, byte position of each row's ids, row lengths, labels, (label sets, number of labels) of
    multi-label data) of a mapped IPC file."""
    buffer = pa.py_buffer(mapped)
    reader = pa.ipc.open_file(buffer)
    multi = "labels" in reader.schema.names
    has_labels = "label" in reader.schema.names or multi
    positions, lengths, labels, sets = [], [], [], []
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        ids = batch.column("ids")
        offsets = ids.offsets.to_numpy().astype(np.int64)
        values = ids.values
        first_byte = values.buffers()[1].address - buffer.address + values.offset * 4
        positions.append(first_byte + 4 * offsets[:-1])
        lengths.append(np.diff(offsets).astype(np.int32))
        if multi:
            column = batch.column("labels")
            bounds = column.offsets.to_numpy().astype(np.int64)  # copies: nothing may point into the map
            values = column.values.to_numpy()[bounds[0] : bounds[-1]].astype(np.int32, copy=True)
            sets.append(LabelSets(bounds - bounds[0], values))
        elif has_labels:
            labels.append(batch.column("label").to_numpy().astype(np.int32))
    width = int((reader.schema.metadata or {}).get(b"num_labels", 0))
    return (
        has_labels,
        np.concatenate(positions) if positions else np.zeros(0, np.int64),
        np.concatenate(lengths) if lengths else np.zeros(0, np.int32),
        np.concatenate(labels) if labels else np.zeros(0, np.int32),
        (LabelSets.concat(sets), width) if multi else None,
    )


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
        by_length: sort each pool by length; False gives plain shuffled batches from the same seeded order (so a
            mid-epoch resume finds its place without bucketing too).
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool = False,
        lengths: np.ndarray | None = None,
        pool_batches: int = 100,
        seed: int = 0,
        by_length: bool = True,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if lengths is None:
            raise ValueError("BucketBatchSampler needs the row lengths")
        self.lengths, self.pool_batches, self.seed = lengths, max(int(pool_batches), 1), seed
        self.by_length = by_length
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
        if self.by_length:
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
