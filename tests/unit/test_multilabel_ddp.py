"""The multi-label metrics and thresholds over two real gloo processes holding different numbers of rows: the same
figures and thresholds as one process over all the rows (states summed over the ranks, never averaged)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from textcls.metrics import MultiLabelTrainStats
from textcls.multilabel import MultiLabelDevMetrics, MultiLabelTestMetrics

ROWS, LABELS, SPLIT = 50, 4, 13  # rank 0 gets 13 rows, rank 1 the other 37


def case() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    target = (torch.rand(ROWS, LABELS, generator=generator) < 0.3).float()
    return torch.randn(ROWS, LABELS, generator=generator) + 2 * target, target


def figures(logits: torch.Tensor, target: torch.Tensor) -> dict[str, object]:
    dev, test, train = MultiLabelDevMetrics(LABELS), MultiLabelTestMetrics(LABELS), MultiLabelTrainStats(LABELS)
    dev.update(logits, target)
    thresholds = torch.full((LABELS,), 0.5)
    values = {k: v.item() for k, v in dev.compute(thresholds, "per_label").items()}
    test.update(logits, target, thresholds)
    values.update({k: v.item() for k, v in test.compute().items()})
    train.update(logits, target, torch.tensor(0.25), thresholds)
    values.update({k: v.item() for k, v in train.compute().items()})
    return {"values": values, "thresholds": thresholds.tolist(), "train_state": train.summed_state()}


def _rank(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    logits, target = case()
    part = slice(0, SPLIT) if rank == 0 else slice(SPLIT, ROWS)
    result = figures(logits[part], target[part])
    if rank == 0:
        torch.save(result, out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow  # two processes import torch
def test_two_ranks_give_the_figures_and_thresholds_of_one_process(tmp_path) -> None:
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=2, join=True)
    distributed = torch.load(out, weights_only=True)
    single = figures(*case())
    assert distributed["thresholds"] == single["thresholds"]
    assert distributed["values"] == pytest.approx(single["values"], abs=1e-6)
    for name, state in single["train_state"].items():
        assert torch.equal(distributed["train_state"][name], state)
