"""Unit tests for the MLP's nb_weighting: Naive Bayes log-count ratios counted from training batches (NBSVM, Wang &
Manning 2012), each term's embedding scaled by its ratio before pooling, and the weights kept in the state dict."""

import math

import pytest
import torch

from textcls.models import MLP

PAD, VOCAB, BUCKETS = 0, 12, 97


def mlp(num_classes: int = 2, **options) -> MLP:
    torch.manual_seed(0)
    options = {"embedding_dim": 4, "hidden_dims": [], "dropout": 0.0, "nb_weighting": True, **options}
    return MLP(VOCAB, num_classes, PAD, **options).eval()


def batch(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def reference_weights(rows: list[list[int]], labels: list[int], num_classes: int, alpha: float) -> list[float]:
    """The documented formula in plain Python: texts of each class containing each token, add-alpha smoothed,
    normalised per class over the table, then max minus min over the classes of the log probability."""
    counts = [[0] * num_classes for _ in range(VOCAB)]
    for row, label in zip(rows, labels, strict=True):
        for token in set(row) - {PAD}:
            counts[token][label] += 1
    totals = [sum(counts[t][c] + alpha for t in range(VOCAB)) for c in range(num_classes)]
    weights = []
    for token in range(VOCAB):
        log_p = [math.log((counts[token][c] + alpha) / totals[c]) for c in range(num_classes)]
        weights.append(max(log_p) - min(log_p))
    return weights


ROWS = [[2, 3, 3, 3], [2, 4], [5, 6, 2], [5, 7], [5, 5, 8, 2], [9]]


@pytest.mark.parametrize(("num_classes", "labels"), [(2, [1, 1, 0, 0, 0, 1]), (3, [0, 1, 2, 2, 1, 0])])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_weights_follow_the_documented_formula(num_classes: int, labels: list[int], alpha: float) -> None:
    model = mlp(num_classes, nb_alpha=alpha)
    # two batches of different widths: counts add up across batches, padding is never a term
    model.fit_nb_weights([(batch(ROWS[:4]), torch.tensor(labels[:4])), (batch(ROWS[4:]), torch.tensor(labels[4:]))])
    expected = reference_weights(ROWS, labels, num_classes, alpha)
    torch.testing.assert_close(model.nb_unigram, torch.tensor(expected, dtype=torch.float32))


def test_separating_terms_weigh_more_than_even_ones_and_repeats_count_once() -> None:
    model = mlp()
    rows = [[3, 2], [3, 2], [3, 4, 4, 4, 4], [2, 5], [2, 5], [2, 5]]
    model.fit_nb_weights([(batch(rows), torch.tensor([1, 1, 1, 0, 0, 0]))])
    weights = model.nb_unigram
    assert weights[3] > weights[4] > 0  # 3 is in every class-1 text; 4 in one, however often
    assert weights[3] == pytest.approx(weights[5].item())  # mirror images: 3 texts of one class, none of the other
    assert weights[2] < weights[4]  # in both classes: little evidence either way


def test_ngram_weights_are_counted_per_bucket() -> None:
    model = mlp(ngram_buckets=BUCKETS)
    rows = [[2, 3, 4], [2, 3, 6], [3, 2, 7], [3, 2, 8]]
    model.fit_nb_weights([(batch(rows), torch.tensor([1, 1, 0, 0]))])
    ids, _ = model._ngrams(batch([[2, 3], [3, 2], [6, 2]]), batch([[2, 3], [3, 2], [6, 2]]) != PAD)
    separating, mirrored, unseen = model.nb_ngram[ids[:, 0]].tolist()
    assert separating == pytest.approx(mirrored) and separating > 0.5  # (2, 3) only in class 1, (3, 2) only in 0
    assert unseen < 0.1  # never counted: both classes' smoothing only


def test_scaling_by_weights_is_what_forward_does() -> None:
    scaled = mlp(pooling="sqrt")
    plain = mlp(pooling="sqrt", nb_weighting=False)  # the same seed draws the same parameters
    ids = batch([[2, 3, 4], [5, 6], [7]])
    torch.testing.assert_close(scaled(ids), plain(ids))  # the weights start at one: no scaling until counted
    scaled.nb_unigram.copy_(torch.arange(VOCAB, dtype=torch.float32) / 4)
    with torch.no_grad():  # the same scaling folded into the plain model's table
        plain.embedding.weight.mul_(scaled.nb_unigram.unsqueeze(1))
    torch.testing.assert_close(scaled(ids), plain(ids))
    assert not torch.allclose(scaled(ids), mlp(pooling="sqrt")(ids))


def test_weights_are_saved_and_loaded_with_the_model() -> None:
    model = mlp(ngram_buckets=BUCKETS)
    model.fit_nb_weights([(batch(ROWS), torch.tensor([1, 1, 0, 0, 0, 1]))])
    state = model.state_dict()
    assert {"nb_unigram", "nb_ngram"} <= state.keys()
    restored = mlp(ngram_buckets=BUCKETS)
    restored.load_state_dict(state)
    ids = batch(ROWS)
    torch.testing.assert_close(restored(ids), model(ids))
    assert "nb_unigram" not in mlp(nb_weighting=False).state_dict()  # other MLPs keep their keys


def test_fit_without_nb_weighting_and_bad_alpha_are_refused() -> None:
    with pytest.raises(ValueError, match="nb_weighting true"):
        mlp(nb_weighting=False).fit_nb_weights([(batch(ROWS), torch.zeros(len(ROWS), dtype=torch.long))])
    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="nb_alpha must be a positive number"):
            mlp(nb_alpha=alpha)


def test_multi_hot_labels_count_a_text_for_each_of_its_labels() -> None:
    model = mlp(3)
    rows, labels = [[2, 3, 3], [2, 4], [5]], [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    model.fit_nb_weights([(batch(rows), torch.tensor(labels))])
    # Texts per (token, label): 2 -> (1, 2, 0), 3 -> (1, 1, 0) (once per text), 4 -> (0, 1, 0); the unlabelled text
    # adds nothing. With add-1 smoothing over the 12-token table the labels' totals are 14, 16 and 12.
    by_hand = {2: math.log((3 / 16) / (1 / 12)), 3: math.log((2 / 14) / (1 / 12)), 4: math.log((2 / 16) / (1 / 14))}
    untouched = math.log((1 / 12) / (1 / 16))  # every label's smoothing only, token 5 included
    for token in range(VOCAB):
        assert model.nb_unigram[token].item() == pytest.approx(by_hand.get(token, untouched), rel=1e-6)
    without = mlp(3)
    without.fit_nb_weights([(batch(rows[:2]), torch.tensor(labels[:2]))])
    assert torch.equal(without.nb_unigram, model.nb_unigram)
