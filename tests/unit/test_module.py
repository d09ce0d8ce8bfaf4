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
    from textcls.metrics import TrainStats

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
    computed = stats.compute()
    assert abs(computed["train/acc"].item() - float(confusion.diag().sum()) / 21) < 1e-6
    assert abs(computed["train/loss_epoch"].item() - loss_sum / 21) < 1e-6
    tp = confusion.diag()
    f1 = (2 * tp / (confusion.sum(0) + confusion.sum(1))).nan_to_num(0.0).mean()
    assert abs(computed["train/f1"].item() - float(f1)) < 1e-6


def test_train_stats_survive_a_checkpoint_and_reset():
    from textcls.metrics import TrainStats

    stats = TrainStats(2)
    stats.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), torch.tensor(0.5))
    saved = stats.summed_state()  # one process: the state itself
    restored = TrainStats(2)
    restored.restore({"confusion": None, "loss_sum": None})  # saved before an epoch's first batch: stays empty
    assert restored.compute() == {}
    restored.restore(saved)
    assert {k: v.item() for k, v in restored.compute().items()} == {k: v.item() for k, v in stats.compute().items()}
    assert "confusion" not in restored.state_dict()  # kept by the module's checkpoint hooks, not as weights
    restored.reset()
    assert restored.compute() == {}


def test_python_fit_gets_nb_weights_from_initialise_from_data_and_refuses_without(tmp_path):
    import pytest
    import pytorch_lightning as pl
    from helpers import labelled_rows, write_rows

    from textcls.data.datamodule import TextDataModule
    from textcls.errors import UserError
    from textcls.initialisers import initialise_from_data

    data = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", labelled_rows(40))), cache_dir=str(tmp_path))

    def module() -> TextClassifier:
        network = MLP(data.vocab_size, data.num_classes, data.pad_id, embedding_dim=4, nb_weighting=True)
        return TextClassifier(network, lr_scheduler=None, label_names=data.label_names)

    def trainer() -> pl.Trainer:
        options = {"logger": False, "enable_progress_bar": False, "enable_checkpointing": False}
        return pl.Trainer(max_steps=1, limit_val_batches=0, enable_model_summary=False, **options)

    with pytest.raises(UserError, match=r"call textcls\.initialisers\.initialise_from_data\(model, datamodule\)"):
        trainer().fit(module(), data)
    fitted = module()
    initialise_from_data(fitted, data)
    expected = MLP(data.vocab_size, data.num_classes, data.pad_id, embedding_dim=4, nb_weighting=True)
    expected.fit_nb_weights(data.labelled_train_batches())
    assert torch.equal(fitted.model.nb_unigram, expected.nb_unigram) and fitted.model.nb_unigram.std() > 0
    trainer().fit(fitted, data)
    assert torch.equal(fitted.model.nb_unigram, expected.nb_unigram)  # buffers, not trained
