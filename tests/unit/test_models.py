"""Unit tests for the plain-torch models: shapes, padding invariance, short inputs, bigram order-sensitivity."""

import pytest
import torch
from jsonargparse import ArgumentError, ArgumentParser

from textcls.models import MLP, TextCNN

VOCAB, CLASSES, PAD = 50, 4, 0

MODEL_FACTORIES = {
    "mlp_mean": lambda: MLP(VOCAB, CLASSES, PAD, embedding_dim=16, hidden_dims=[32]),
    "mlp_max": lambda: MLP(VOCAB, CLASSES, PAD, embedding_dim=16, hidden_dims=[32], pooling="max"),
    "mlp_bigram_mean": lambda: MLP(VOCAB, CLASSES, PAD, embedding_dim=16, ngram_buckets=101),
    "mlp_bigram_max": lambda: MLP(VOCAB, CLASSES, PAD, embedding_dim=16, ngram_buckets=101, pooling="max"),
    "mlp_linear": lambda: MLP(VOCAB, CLASSES, PAD, embedding_dim=16, hidden_dims=[]),
    "textcnn": lambda: TextCNN(VOCAB, CLASSES, PAD, embedding_dim=16, num_filters=8),
}


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODEL_FACTORIES[name]().eval()


def right_pad(rows: list[list[int]], length: int | None = None) -> torch.Tensor:
    length = length or max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (length - len(r)) for r in rows])


ROWS = [[5, 9, 3, 17, 22, 8, 4], [7], [11, 12], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]]


@pytest.mark.parametrize("name", MODEL_FACTORIES)
def test_output_shape_and_dtype(name: str) -> None:
    logits = make(name)(right_pad(ROWS))
    assert logits.shape == (len(ROWS), CLASSES)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("name", MODEL_FACTORIES)
def test_padding_invariance(name: str) -> None:
    model = make(name)
    with torch.no_grad():
        batched = model(right_pad(ROWS, length=40))
        for i, row in enumerate(ROWS):
            alone = model(right_pad([row]))
            assert torch.allclose(alone[0], batched[i], atol=1e-6), f"row {i} changed with extra padding"


@pytest.mark.parametrize("length", [1, 2])
def test_textcnn_handles_texts_shorter_than_kernels(length: int) -> None:
    model = make("textcnn")
    assert model.kernel_sizes == [3, 4, 5]
    logits = model(torch.arange(1, length + 1).unsqueeze(0))
    assert logits.shape == (1, CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_FACTORIES)
def test_all_padding_row_gives_finite_logits(name: str) -> None:
    logits = make(name)(right_pad([[PAD, PAD, PAD], [4, 5]]))
    assert torch.isfinite(logits).all()


def test_bigrams_make_mean_pooling_order_sensitive() -> None:
    forward, backward = torch.tensor([[3, 4, 5]]), torch.tensor([[5, 4, 3]])
    with torch.no_grad():
        unigram = make("mlp_mean")
        assert torch.allclose(unigram(forward), unigram(backward), atol=1e-6)
        bigram = make("mlp_bigram_mean")
        assert not torch.allclose(bigram(forward), bigram(backward), atol=1e-4)


@pytest.mark.parametrize("name", MODEL_FACTORIES)
def test_gradients_reach_embedding(name: str) -> None:
    model = make(name).train()
    model(right_pad(ROWS)).sum().backward()
    grad = model.embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert torch.isfinite(grad).all()


def test_invalid_pooling_names_the_argument() -> None:
    with pytest.raises(ValueError, match="pooling"):
        MLP(VOCAB, CLASSES, PAD, pooling="sum")


def test_invalid_activation_names_the_argument() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLP(VOCAB, CLASSES, PAD, activation="swish")


@pytest.mark.parametrize(("option", "choices"), [("activation", "relu,gelu,tanh"), ("pooling", "mean,max,sqrt")])
def test_the_parser_lists_and_enforces_the_choices(option: str, choices: str) -> None:
    # --help lists the choices and a bad value is refused while parsing, before the model is built
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(MLP, "model")
    assert f"--model.{option} {{{choices}}}" in parser.format_help()
    assert parser.parse_args([f"--model.{option}", choices.split(",")[-1]]).model[option] == choices.split(",")[-1]
    with pytest.raises(ArgumentError, match=option):
        parser.parse_args([f"--model.{option}", "bogus"])


def test_defaults_construct() -> None:
    # the CLI instantiates with defaults before the data links in the real sizes
    assert MLP()(torch.tensor([[1, 0]])).shape == (1, 2)
    assert TextCNN()(torch.tensor([[1, 0]])).shape == (1, 2)
