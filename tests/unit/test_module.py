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
    # a small network: what is tested is that the loss and gradients flow, not the default size
    losses = _overfit(TextCNN(vocab_size=50, num_classes=3, embedding_dim=16, num_filters=8, dropout=0.0))
    assert losses[-1] <= 0.1 * losses[0]


def test_mlp_overfits_a_small_batch():
    losses = _overfit(MLP(vocab_size=50, num_classes=3, dropout=0.0))
    assert losses[-1] <= 0.1 * losses[0]


def test_class_weights_must_match_the_classes():
    import pytest

    with pytest.raises(ValueError, match="one weight per class"):
        TextClassifier(model=MLP(vocab_size=10, num_classes=2), class_weights=[1.0], label_names=["a", "b"])


def test_train_stats_count_every_example_and_weigh_the_loss_by_batch_size():
    from textcls.module import TrainStats

    class OneProcess:
        def reduce(self, tensor, reduce_op):
            return tensor

    torch.manual_seed(0)
    stats = TrainStats(3)
    confusion = torch.zeros(3, 3, dtype=torch.float64)
    loss_sum = 0.0
    for size in (8, 8, 5):  # the last batch is smaller than the reused increment
        logits, labels, loss = torch.randn(size, 3), torch.randint(0, 3, (size,)), torch.rand(())
        stats.update(logits, labels, loss)
        for true, predicted in zip(labels.tolist(), logits.argmax(-1).tolist(), strict=True):
            confusion[true, predicted] += 1
        loss_sum += float(loss) * size
    assert torch.equal(stats.confusion.view(3, 3), confusion)
    assert stats.loss_sum.tolist() == [loss_sum, 21.0]
    computed = stats.compute(OneProcess())
    assert abs(computed["train/acc"].item() - float(confusion.diag().sum()) / 21) < 1e-6
    assert abs(computed["train/loss_epoch"].item() - loss_sum / 21) < 1e-6
