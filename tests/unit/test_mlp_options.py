"""Unit tests for the MLP's fastText options: binary pooling (dedupe_mask), sqrt pooling, hashed trigrams, word dropout,
sparse embedding gradients, and which optimizers textcls lets train sparse gradients."""

import itertools
import math
from functools import partial

import pytest
import torch
from torch import nn

from textcls.data.errors import DataError
from textcls.models import MLP
from textcls.models.mlp import _NGRAM_PRIMES, NGRAM_HASH_VERSION
from textcls.models.pooling import dedupe_mask, masked_mean, masked_sqrt_sum
from textcls.optim import SPARSE_GROUP, build_optimizer, check_gradient_clipping, parameter_groups

VOCAB, CLASSES, PAD, BUCKETS = 50, 3, 0, 101
CPU = torch.device("cpu")


def mlp(**options) -> MLP:
    torch.manual_seed(0)
    options = {"embedding_dim": 8, "hidden_dims": [16], "dropout": 0.0, **options}
    return MLP(VOCAB, CLASSES, PAD, **options).eval()


def right_pad(rows: list[list[int]], length: int | None = None) -> torch.Tensor:
    length = length or max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (length - len(r)) for r in rows])


# --- dedupe_mask -----------------------------------------------------------------------------------------------------


def dedupe_reference(ids: list[int], mask: list[bool]) -> list[bool]:
    seen: set[int] = set()
    out = []
    for i, keep in zip(ids, mask, strict=True):
        out.append(keep and i not in seen)
        if keep:
            seen.add(i)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_dedupe_mask_matches_plain_python_on_random_rows(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 6, (16, 12), generator=generator)  # few distinct ids: many repeats per row
    lengths = torch.randint(0, 13, (16,), generator=generator)
    mask = torch.arange(12) < lengths.unsqueeze(1)  # right padding, including empty and full rows
    ids = ids.masked_fill(~mask, PAD)
    got = dedupe_mask(ids, mask)
    assert got.dtype == torch.bool and got.shape == ids.shape
    for row in range(len(ids)):
        assert got[row].tolist() == dedupe_reference(ids[row].tolist(), mask[row].tolist()), f"row {row}"


def test_dedupe_mask_ignores_masked_positions_anywhere_and_large_ids() -> None:
    # a masked position is never kept, and it does not hide a later real occurrence of the same id
    ids = torch.tensor([[7, 7, 3, 7, 3], [2**40, 5, 2**40, 5, 0]])
    mask = torch.tensor([[False, True, True, True, True], [True, True, True, False, False]])
    expected = [dedupe_reference(r, m) for r, m in zip(ids.tolist(), mask.tolist(), strict=True)]
    assert (
        dedupe_mask(ids, mask).tolist()
        == expected
        == [
            [False, True, True, False, False],
            [True, True, False, False, False],
        ]
    )


# --- binary pooling --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "sqrt"])
def test_binary_pools_each_distinct_token_once(pooling: str) -> None:
    a, b = 4, 9
    repeated, once = right_pad([[a, a, b], [a, b]])
    with torch.no_grad():
        binary = mlp(pooling=pooling, binary=True)
        assert torch.allclose(binary(repeated[None]), binary(once[None]), atol=1e-6)
        counting = mlp(pooling=pooling)
        assert not torch.allclose(counting(repeated[None]), counting(once[None]), atol=1e-4)


def test_binary_dedupes_ngrams_too() -> None:
    # "a b a b" and "a b a" have the same distinct unigrams {a, b} and bigrams {ab, ba}, different counts
    a, b = 4, 9
    longer, shorter = torch.tensor([[a, b, a, b]]), torch.tensor([[a, b, a]])
    with torch.no_grad():
        binary = mlp(ngram_buckets=BUCKETS, binary=True)
        assert torch.allclose(binary(longer), binary(shorter), atol=1e-6)
        counting = mlp(ngram_buckets=BUCKETS)
        assert not torch.allclose(counting(longer), counting(shorter), atol=1e-4)


# --- sqrt pooling ----------------------------------------------------------------------------------------------------


def test_masked_sqrt_sum_by_hand_and_empty_row_is_zero() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    pooled = masked_sqrt_sum(x, mask)
    torch.testing.assert_close(pooled[0], torch.tensor([4.0, 6.0]) / 2**0.5)
    assert torch.equal(pooled[1], torch.zeros(2))  # no valid position: 0, not NaN
    x.requires_grad_(True)
    masked_sqrt_sum(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].abs().sum() == 0


def test_sqrt_pooling_is_mean_times_root_of_count() -> None:
    x = torch.randn(4, 6, 3)
    mask = torch.arange(6) < torch.tensor([[1], [3], [6], [2]])
    count = mask.sum(1, keepdim=True).float()
    torch.testing.assert_close(masked_sqrt_sum(x, mask), masked_mean(x, mask) * count.sqrt())


# --- hashed trigrams -------------------------------------------------------------------------------------------------


def test_trigram_ids_follow_the_documented_hash_without_overflow() -> None:
    big_vocab, buckets = 5_000_000, 2_000_003
    model = MLP(big_vocab, CLASSES, PAD, embedding_dim=2, ngram_buckets=buckets, ngram_order=3)
    ids = torch.tensor([[big_vocab - 1, big_vocab - 2, 3_333_333, 1, 4_999_000]])
    ngram_ids, mask = model._ngrams(ids, ids != PAD)
    row = ids[0].tolist()
    p1, p2, p3, p4, p5 = _NGRAM_PRIMES
    bigrams = [(x * p1 + y * p2) % buckets for x, y in itertools.pairwise(row)]
    trigrams = [(x * p3 + y * p4 + z * p5) % buckets for x, y, z in zip(row, row[1:], row[2:], strict=False)]
    assert ngram_ids[0].tolist() == bigrams + trigrams  # Python ints: the exact values, no int64 wrap-around
    assert mask.all()


def test_trigram_ids_are_in_range_and_not_the_bigram_of_their_prefix() -> None:
    model = mlp(ngram_buckets=BUCKETS, ngram_order=3)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (64, 20), generator=generator)
    ngram_ids, mask = model._ngrams(ids, ids != PAD)
    assert ngram_ids.shape == mask.shape == (64, 19 + 18)
    assert ngram_ids.min() >= 0 and ngram_ids.max() < BUCKETS
    bigram_of_prefix, trigram = ngram_ids[:, :18], ngram_ids[:, 19:]
    # a trigram may share its prefix bigram's bucket only by chance (about 1 / BUCKETS), not systematically
    assert (bigram_of_prefix == trigram).float().mean() < 0.05
    assert trigram.unique().numel() > BUCKETS // 2  # spread over the table


@pytest.mark.parametrize("buckets", [50_000, 500_000, 1_000_000])
def test_bigram_hash_spreads_pairs_like_a_random_hash(buckets: int) -> None:
    # The first hash, (a * 1000003 + b) mod B, was (3a + b) mod B at these B: 30k distinct pairs of a 10k vocabulary
    # shared about 27k / 40k buckets. A random hash leaves B * (1 - exp(-n / B)) distinct buckets.
    model = MLP(10_000, CLASSES, PAD, embedding_dim=2, ngram_buckets=buckets)
    generator = torch.Generator().manual_seed(0)
    pairs = torch.randint(1, 10_000, (30_000, 2), generator=generator).unique(dim=0)
    ngram_ids, _ = model._ngrams(pairs, pairs != PAD)
    expected = buckets * (1 - math.exp(-len(pairs) / buckets))
    assert ngram_ids.unique().numel() >= 0.98 * expected


def test_checkpoint_of_another_ngram_hash_is_refused() -> None:
    trained = mlp(ngram_buckets=BUCKETS).state_dict()
    assert int(trained["ngram_hash_version"]) == NGRAM_HASH_VERSION
    fresh = mlp(ngram_buckets=BUCKETS)
    fresh.load_state_dict(trained)  # the same hash loads
    old = {k: v for k, v in trained.items() if k != "ngram_hash_version"}  # written before the version was recorded
    with pytest.raises(RuntimeError, match=r"first n-gram hash .* retrain the model"):
        fresh.load_state_dict(old)
    with pytest.raises(RuntimeError, match="n-gram hash 1,"):
        fresh.load_state_dict({**trained, "ngram_hash_version": torch.tensor(1)})
    mlp().load_state_dict(mlp().state_dict())  # no n-gram table: nothing recorded, nothing checked


def test_trigram_makes_order_within_three_words_matter() -> None:
    # the same unigrams and bigrams (ab ba ac ca), different trigrams (aba bac aca / aca cab aba)
    a, b, c = 4, 9, 13
    first, second = torch.tensor([[a, b, a, c, a]]), torch.tensor([[a, c, a, b, a]])
    with torch.no_grad():
        bigram = mlp(ngram_buckets=BUCKETS)
        assert torch.allclose(bigram(first), bigram(second), atol=1e-6)
        trigram = mlp(ngram_buckets=BUCKETS, ngram_order=3)
        assert not torch.allclose(trigram(first), trigram(second), atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "max", "sqrt"])
@pytest.mark.parametrize("binary", [False, True])
def test_ngrams_over_padding_never_contribute(pooling: str, binary: bool) -> None:
    model = mlp(ngram_buckets=BUCKETS, ngram_order=3, pooling=pooling, binary=binary)
    rows = [[5, 9, 3, 17], [7], [11, 12], [3, 4, 5, 6, 7, 8]]
    batch = right_pad(rows, length=9)
    ngram_ids, valid = model._ngrams(batch, batch != PAD)
    touched_by_padding = set(ngram_ids[~valid].tolist()) - set(ngram_ids[valid].tolist())
    assert touched_by_padding  # the windows over padding do hash to buckets no real n-gram uses
    with torch.no_grad():
        before = model(batch)
        model.ngram_embedding.weight[sorted(touched_by_padding)] = 1e4  # poison those rows
        model.embedding.weight[PAD] = 1e4
        after = model(batch)
        assert torch.allclose(before, after, atol=1e-5)
        for i, row in enumerate(rows):  # and a row alone gives what it gives in a padded batch
            assert torch.allclose(model(right_pad([row]))[0], after[i], atol=1e-5)


# --- word dropout ----------------------------------------------------------------------------------------------------


def test_word_dropout_only_in_training() -> None:
    batch = right_pad([[5, 9, 3, 17, 22, 8, 4, 30], [7, 8, 9, 10, 11]])
    model = mlp(word_dropout=0.5, ngram_buckets=BUCKETS)
    reference = mlp(ngram_buckets=BUCKETS)  # same seed, same weights, no word dropout
    with torch.no_grad():
        assert torch.equal(model(batch), model(batch))
        assert torch.allclose(model(batch), reference(batch))
        model.train()  # dropout=0.0: only word dropout can make training forwards differ
        torch.manual_seed(1)
        outputs = [model(batch) for _ in range(4)]
    assert not all(torch.allclose(outputs[0], o) for o in outputs[1:])
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_word_dropout_out_of_range_names_the_option(value: float) -> None:
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\)"):
        MLP(VOCAB, CLASSES, PAD, word_dropout=value)


# --- ngram_order -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ngram_order": 3, "ngram_buckets": 0}, "ngram_order 3 needs ngram_buckets > 0"),
        ({"ngram_order": 4, "ngram_buckets": BUCKETS}, "ngram_order must be 2"),
        ({"ngram_order": 1, "ngram_buckets": BUCKETS}, "ngram_order must be 2"),
    ],
)
def test_bad_ngram_order_names_the_option(options: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        MLP(VOCAB, CLASSES, PAD, **options)


# --- sparse gradients ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_sparse_gives_sparse_grads_on_embedding_tables_only(sparse: bool) -> None:
    model = mlp(ngram_buckets=BUCKETS, ngram_order=3, sparse=sparse).train()
    model(right_pad([[5, 9, 3, 17], [7, 8]])).sum().backward()
    for name, param in model.named_parameters():
        is_table = name.startswith(("embedding.", "ngram_embedding."))
        assert param.grad is not None, name
        assert param.grad.is_sparse == (sparse and is_table), name
    if sparse:  # only the rows of the batch, never the padding row
        rows = model.embedding.weight.grad.coalesce().indices()[0].tolist()
        assert sorted(rows) == [3, 5, 7, 8, 9, 17]


def test_sparse_does_not_change_the_checkpoint() -> None:
    dense, sparse = mlp(ngram_buckets=BUCKETS, sparse=False), mlp(ngram_buckets=BUCKETS, sparse=True)
    assert list(dense.state_dict()) == list(sparse.state_dict())
    with torch.no_grad():
        for param in dense.parameters():
            param.add_(torch.randn_like(param))
    sparse.load_state_dict(dense.state_dict())
    batch = right_pad([[5, 9, 3], [7]])
    with torch.no_grad():
        assert torch.equal(dense(batch), sparse(batch))


def test_parameter_groups_mark_the_sparse_tables() -> None:
    model = mlp(ngram_buckets=BUCKETS, sparse=True)
    groups = parameter_groups(model)
    sparse = [g for g in groups if g.get(SPARSE_GROUP)]
    assert [p for g in sparse for p in g["params"]] == [model.embedding.weight, model.ngram_embedding.weight]
    assert all(g["weight_decay"] == 0.0 for g in sparse)
    assert not any(SPARSE_GROUP in g for g in parameter_groups(mlp(ngram_buckets=BUCKETS)))  # dense: as before
    assert len(parameter_groups(mlp(ngram_buckets=BUCKETS))) == 2


@pytest.mark.parametrize(
    "factory",
    [partial(torch.optim.Adagrad, lr=0.1, fused=None), partial(torch.optim.SGD, lr=0.5, fused=None)],
    ids=["adagrad", "sgd"],
)
def test_sparse_trains_every_layer_with_adagrad_or_sgd(factory) -> None:
    model = mlp(ngram_buckets=BUCKETS, sparse=True).train()
    optimizer = build_optimizer(factory, parameter_groups(model), CPU)
    assert not optimizer.defaults["fused"]  # the fused kernels refuse sparse gradients: not chosen for the user
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = right_pad([[5, 9, 3, 17], [7, 8]])
    torch.nn.functional.cross_entropy(model(batch), torch.tensor([0, 2])).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        assert not torch.equal(before[name], param), f"{name} was not updated"
    changed_rows = (before["embedding.weight"] != model.embedding.weight).any(1).nonzero().flatten().tolist()
    assert changed_rows == [3, 5, 7, 8, 9, 17]  # a sparse step touches only the batch's rows (padding row stays)


@pytest.mark.parametrize(
    ("factory", "decay_embeddings", "expected"),
    [
        (partial(torch.optim.Adam, lr=1e-3, fused=None), False, "Adam does not support sparse gradients"),
        (partial(torch.optim.AdamW, lr=1e-3), False, "--model.optimizer AdamW cannot train"),
        (partial(torch.optim.SparseAdam, lr=1e-3), False, "SparseAdam does not support dense gradients"),
        (partial(torch.optim.SGD, lr=0.1, momentum=0.9), False, "grows at every step"),
        (partial(torch.optim.SGD, lr=0.1, fused=True), False, "does not support sparse"),
        (partial(torch.optim.Adagrad, lr=0.1, fused=True), False, "does not support sparse"),
        (partial(torch.optim.Adagrad, lr=0.1, weight_decay=0.01), True, "weight_decay"),
    ],
    ids=["adam", "adamw", "sparse-adam", "sgd-momentum", "sgd-fused", "adagrad-fused", "adagrad-decayed-embeddings"],
)
def test_optimizers_that_cannot_train_sparse_tables_are_refused(factory, decay_embeddings, expected) -> None:
    model = mlp(ngram_buckets=BUCKETS, sparse=True)
    with pytest.raises(DataError) as caught:
        build_optimizer(factory, parameter_groups(model, decay_embeddings=decay_embeddings), CPU)
    message = str(caught.value)
    assert expected in message
    assert "--model.model.init_args.sparse" in message and "torch.optim.Adagrad" in message
    assert "\n" not in message and "please consider" not in message  # one line; torch's Adam<->SparseAdam advice cut


def test_adagrad_weight_decay_on_dense_layers_only_is_fine() -> None:
    model = mlp(ngram_buckets=BUCKETS, sparse=True)
    optimizer = build_optimizer(partial(torch.optim.Adagrad, lr=0.1, weight_decay=0.01), parameter_groups(model), CPU)
    assert isinstance(optimizer, torch.optim.Adagrad)


def test_gradient_clipping_is_refused_for_sparse_tables_only() -> None:
    sparse_groups = parameter_groups(mlp(sparse=True))
    with pytest.raises(
        DataError, match=r"--trainer.gradient_clip_val 1.0 cannot clip .* pass --trainer.gradient_clip_val null"
    ):
        check_gradient_clipping(sparse_groups, 1.0)
    check_gradient_clipping(sparse_groups, None)
    check_gradient_clipping(sparse_groups, 0.0)
    check_gradient_clipping(parameter_groups(mlp()), 1.0)
    # what it protects against: torch's clipping has no sparse kernel
    model = mlp(sparse=True).train()
    model(right_pad([[5, 9]])).sum().backward()
    with pytest.raises(NotImplementedError):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)


def test_python_trainer_fit_with_sparse_tables_and_clipping_gets_the_message(tmp_path) -> None:
    # Trainer.fit from Python skips the CLI's early check: configure_optimizers checks too, before any step.
    import pytorch_lightning as pl
    from helpers import labelled_rows, write_rows

    from textcls.data.datamodule import TextDataModule
    from textcls.module import TextClassifier

    data = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", labelled_rows(40))), cache_dir=str(tmp_path))
    data.setup("fit")
    network = MLP(data.vocab_size, data.num_classes, data.pad_id, embedding_dim=4, sparse=True)
    module = TextClassifier(network, optimizer=torch.optim.Adagrad, label_names=data.label_names)
    trainer = pl.Trainer(
        max_steps=1, gradient_clip_val=1.0, logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    with pytest.raises(DataError, match=r"gradient_clip_val 1\.0 cannot clip"):
        trainer.fit(module, data)
    assert trainer.global_step == 0
