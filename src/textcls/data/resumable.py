"""DataLoader pieces for fault tolerance and exact distributed evaluation.

`ResumableDataLoader` lets a run restored from a mid-epoch checkpoint continue the epoch where it stopped: Lightning
saves `state_dict()` (the number of batches handed out this epoch) in the checkpoint and calls `load_state_dict()` when
it restarts mid-epoch; the next iteration then skips that many batches at the index level (no row is read). The order
itself must be a pure function of the epoch, which the training samplers here are (seeded by seed + epoch, and
Lightning calls `set_epoch` before every epoch).

`distributed_eval_sampler` gives each DDP rank a disjoint part of an evaluation set without the padding duplicates of
`DistributedSampler`, so validation and test metrics count every example exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset

from textcls.compat import IndexSamplerDataLoader


class ResumableDataLoader(IndexSamplerDataLoader):
    """A `torch.utils.data.DataLoader` (same arguments) that can resume an epoch part-way."""

    def wrap_index_sampler(self, sampler: Any) -> Any:
        return _SkipFirst(self, sampler)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self._handed_out = getattr(self, "_skip", 0)
        return self._count()

    def _count(self) -> Iterator[Any]:
        # Lazy: torch's iterator (which reads the index sampler, and starts the workers) is made at the first batch, so
        # a position loaded after `iter()` and before that batch still applies (textcls.fault_tolerance).
        self._handed_out = getattr(self, "_skip", 0)
        # The worker iterator reads the index sampler twice while it starts; the skip holds for both, then ends.
        batches = super().__iter__()
        self._skip = 0
        for batch in batches:
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches": int(getattr(self, "_handed_out", 0))}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._skip = self._handed_out = int(state_dict.get("batches", 0))


class _SkipFirst:
    """The loader's index sampler, minus the batches a resumed epoch already consumed."""

    def __init__(self, loader: ResumableDataLoader, sampler: Any) -> None:
        self.loader, self.sampler = loader, sampler

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.sampler), getattr(self.loader, "_skip", 0), None)

    def __len__(self) -> int:
        return len(self.sampler)


def distributed_eval_sampler(dataset: Dataset) -> UnrepeatedDistributedSampler | None:
    """Disjoint, unpadded shards of `dataset` per rank when running distributed; None (sequential) otherwise."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return UnrepeatedDistributedSampler(
        dataset,
        num_replicas=dist.get_world_size(),
        rank=dist.get_rank(),
        shuffle=False,
    )
