"""Length-bucketed batches: every row once per epoch, little padding, seeded, disjoint shards per DDP rank."""

import numpy as np
import pytest
from helpers import labelled_rows, write_rows
from torch.utils.data import DistributedSampler, SequentialSampler

from textcls.data import TextDataModule
from textcls.data.batching import BucketBatchSampler, padding_fraction

LENGTHS = np.random.default_rng(0).integers(1, 300, size=1003)


class _Rows:
    def __len__(self):
        return len(LENGTHS)


def _sampler(sampler=None, **kwargs):
    return BucketBatchSampler(sampler or SequentialSampler(_Rows()), batch_size=16, lengths=LENGTHS, **kwargs)


def test_every_row_once_per_epoch_and_len_matches():
    batches = list(_sampler())
    assert len(batches) == len(_sampler()) == 63
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert len(list(_sampler(drop_last=True))) == len(_sampler(drop_last=True)) == 62


def test_bucketing_cuts_padding_and_is_seeded_per_epoch():
    plain = [list(range(i, min(i + 16, len(LENGTHS)))) for i in range(0, len(LENGTHS), 16)]
    assert padding_fraction(LENGTHS, list(_sampler(pool_batches=100))) < 0.1 < padding_fraction(LENGTHS, plain)
    a, b = _sampler(seed=1), _sampler(seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_ranks_get_disjoint_shards_with_equal_batch_counts():
    shards = []
    for rank in range(2):
        inner = DistributedSampler(_Rows(), num_replicas=2, rank=rank, shuffle=True, seed=3)
        batches = list(_sampler(inner))
        assert len(batches) == len(_sampler(inner))
        shards.append({i for batch in batches for i in batch})
    assert len(list(_sampler(DistributedSampler(_Rows(), num_replicas=2, rank=0)))) == len(
        list(_sampler(DistributedSampler(_Rows(), num_replicas=2, rank=1)))
    )
    # DistributedSampler pads the shorter shard with one repeated row (1003 rows over 2 ranks).
    assert len(shards[0] & shards[1]) <= 1 and len(shards[0] | shards[1]) == len(LENGTHS)


@pytest.mark.parametrize("bucket", [True, False])
def test_train_loader_yields_padded_batches(tmp_path, bucket):
    rows = [{"text": "word " * (1 + i % 37), "label": "ab"[i % 2]} for i in range(300)]
    dm = TextDataModule(
        train_file=str(write_rows(tmp_path / "t.csv", rows)), batch_size=8, bucket=bucket, cache_dir=str(tmp_path / "c")
    )
    dm.setup("fit")
    seen = []
    for batch in dm.train_dataloader():
        ids = batch["input_ids"]
        assert ids.shape[0] <= 8 and ((ids != dm.pad_id).sum(1) > 0).all()
        seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(len(dm.datasets["train"])))


def test_dataset_memory_maps_and_pickles(tmp_path):
    import pickle

    dm = TextDataModule(
        train_file=str(write_rows(tmp_path / "t.csv", labelled_rows(40))), cache_dir=str(tmp_path / "c")
    )
    dm.setup("fit")
    data = dm.datasets["train"]
    again = pickle.loads(pickle.dumps(data))
    assert again[3]["input_ids"].tolist() == data[3]["input_ids"].tolist()
    assert again.labels.tolist() == data.labels.tolist()


def test_unbucketed_order_depends_on_seed_and_epoch_only(tmp_path):
    """`--data.bucket false` must not draw its shuffle from the global RNG: a run resumed mid-epoch (whose global RNG
    state differs from the interrupted run's) has to see the same batches in the same order."""
    import torch

    rows = [{"text": "word " * (1 + i % 37), "label": "ab"[i % 2]} for i in range(300)]
    dm = TextDataModule(
        train_file=str(write_rows(tmp_path / "t.csv", rows)), batch_size=8, bucket=False, cache_dir=str(tmp_path / "c")
    )
    dm.setup("fit")
    orders = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(3)
        orders.append([batch["index"].tolist() for batch in loader])
    assert orders[0] == orders[1]
    lengths = dm.datasets["train"].lengths
    # plain shuffled batches: as much padding as an unsorted order, far more than bucketing leaves
    assert padding_fraction(lengths, orders[0]) > 0.3
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(4)
    assert [batch["index"].tolist() for batch in loader] != orders[0]
