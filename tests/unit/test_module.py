import torch

from textcls.models import MLP, TextCNN
from textcls.module import TextClassifier


def _overfit(model, steps=60):
    torch.manual_seed(0)
    module = TextClassifier(model=model, lr_scheduler=None, label_names=["a", "b", "c"])
    inputs = torch.randint(2, 50, (16, 12))
    inputs[::3, 8:] = 0  # some padded rows
    labels = torch.randint(0, 3, (16,))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = module._loss(module(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_textcnn_overfits_a_small_batch():
    losses = _overfit(TextCNN(vocab_size=50, num_classes=3, dropout=0.0))
    assert losses[-1] <= 0.1 * losses[0]


def test_mlp_overfits_a_small_batch():
    losses = _overfit(MLP(vocab_size=50, num_classes=3, dropout=0.0))
    assert losses[-1] <= 0.1 * losses[0]


def test_class_weights_must_match_the_classes():
    import pytest

    with pytest.raises(ValueError, match="one weight per class"):
        TextClassifier(model=MLP(vocab_size=10, num_classes=2), class_weights=[1.0], label_names=["a", "b"])
