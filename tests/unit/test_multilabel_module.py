"""TextClassifier with multi_label: the loss, the test metrics and the cheap training statistics against plain-Python
formulas on small cases, then a tiny in-process fit: thresholds tuned on dev, kept in the checkpoint and used by test,
the per-label report."""

from __future__ import annotations

import csv
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from textcls.config_checks import MULTI_LABEL_LOGGED_METRICS
from textcls.metrics import MultiLabelTrainStats
from textcls.models import MLP
from textcls.module import TextClassifier
from textcls.multilabel import GRID, MultiLabelTestMetrics, multilabel_loss
from textcls.reporting import ClassificationReport, per_label_scores

NAMES = ["joy", "anger", "fear"]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def random_case(seed: int, rows: int = 30, labels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(rows, labels, generator=generator) < 0.35).float()
    logits = torch.randn(rows, labels, generator=generator) + 1.5 * target
    return logits, target


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_loss_is_binary_cross_entropy_with_positive_weights(smoothing: float) -> None:
    logits, target = random_case(0, rows=5)
    weights = [1.0, 4.0, 0.5]
    total = 0.0
    for row_logits, row_target in zip(logits.tolist(), target.tolist(), strict=True):
        for x, y, w in zip(row_logits, row_target, weights, strict=True):
            y = y * (1 - smoothing) + smoothing / 2
            total -= w * y * math.log(sigmoid(x)) + (1 - y) * math.log(1 - sigmoid(x))
    loss = multilabel_loss(logits, target, torch.tensor(weights), smoothing)
    assert loss.item() == pytest.approx(total / logits.numel(), rel=1e-5)


def plain_metrics(probs: list[list[float]], truth: list[list[float]], thresholds: list[float]) -> dict[str, float]:
    """The documented test metrics in plain Python (an undefined F1 or AP counts 0, as in torchmetrics)."""
    labels = range(len(thresholds))
    decided = [[int(p >= t) for p, t in zip(row, thresholds, strict=True)] for row in probs]
    counts = []
    for c in labels:
        pairs = [(d[c], int(y[c])) for d, y in zip(decided, truth, strict=True)]
        tp, fp = sum(d and y for d, y in pairs), sum(d and not y for d, y in pairs)
        counts.append([tp, fp, sum(y and not d for d, y in pairs)])

    def f1(tp: int, fp: int, fn: int) -> float:
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    def average_precision(c: int) -> float:  # the binned curve over GRID, (precision 1, recall 0) appended
        curve = []
        for t in GRID.tolist():
            tp = sum(p[c] >= t and y[c] == 1 for p, y in zip(probs, truth, strict=True))
            fp = sum(p[c] >= t and y[c] == 0 for p, y in zip(probs, truth, strict=True))
            positives = sum(y[c] == 1 for y in truth)
            curve.append((tp / (tp + fp) if tp + fp else 0.0, tp / positives if positives else 0.0))
        curve.append((1.0, 0.0))
        return sum((curve[i][1] - curve[i + 1][1]) * curve[i][0] for i in range(len(curve) - 1))

    rows = len(probs)
    return {
        "test/f1_macro": sum(f1(*count) for count in counts) / len(counts),
        "test/f1_micro": f1(*(sum(count[i] for count in counts) for i in range(3))),
        "test/subset_acc": sum(d == [int(v) for v in y] for d, y in zip(decided, truth, strict=True)) / rows,
        "test/hamming": sum(count[1] + count[2] for count in counts) / (rows * len(counts)),
        "test/map": sum(average_precision(c) for c in labels) / len(counts),
    }


@pytest.mark.parametrize("seed", range(4))
def test_test_metrics_match_plain_python_at_per_label_thresholds(seed: int) -> None:
    logits, target = random_case(seed)
    if seed == 3:
        target[:, 2] = 0  # no positive: F1 0 and AP 0 for that label in the macro averages
    thresholds = torch.tensor([0.3, 0.5, 0.71])
    metrics = MultiLabelTestMetrics(3)
    metrics.update(logits[:11], target[:11], thresholds)
    metrics.update(logits[11:], target[11:], thresholds)
    got = {k: v.item() for k, v in metrics.compute().items()}
    expected = plain_metrics(torch.sigmoid(logits).tolist(), target.tolist(), thresholds.tolist())
    assert got == pytest.approx(expected, abs=1e-6)


def test_train_stats_count_at_the_thresholds_and_survive_a_checkpoint() -> None:
    stats = MultiLabelTrainStats(3)
    thresholds = torch.tensor([0.5, 0.2, 0.8])
    counts = [[0, 0, 0] for _ in range(3)]  # tp, predicted, actual per label
    loss_sum = 0.0
    for seed, size in ((1, 8), (2, 5)):
        logits, target = random_case(seed, rows=size)
        loss = torch.rand(())
        stats.update(logits, target, loss, thresholds)
        for row, truth in zip(torch.sigmoid(logits).tolist(), target.tolist(), strict=True):
            for c in range(3):
                decided = row[c] >= thresholds[c].item()
                counts[c][0] += decided and truth[c] == 1
                counts[c][1] += decided
                counts[c][2] += truth[c] == 1
        loss_sum += float(loss) * size
    tp, predicted, actual = ([count[i] for count in counts] for i in range(3))
    computed = stats.compute()
    assert computed["train/f1_micro"].item() == pytest.approx(2 * sum(tp) / (sum(predicted) + sum(actual)))
    macro = sum(2 * t / (p + a) if p + a else 0.0 for t, p, a in zip(tp, predicted, actual, strict=True)) / 3
    assert computed["train/f1_macro"].item() == pytest.approx(macro)
    assert computed["train/loss_epoch"].item() == pytest.approx(loss_sum / 13)

    restored = MultiLabelTrainStats(3)
    restored.restore({"counts": None, "loss_sum": None})  # saved before an epoch's first batch
    assert restored.compute() == {}
    restored.restore(stats.summed_state())
    assert {k: v.item() for k, v in restored.compute().items()} == {k: v.item() for k, v in computed.items()}
    assert "counts" not in restored.state_dict()


def test_report_scores_per_label_from_stat_scores() -> None:
    # tp, fp, tn, fn, support per label
    scores = per_label_scores(torch.tensor([[3, 1, 5, 1, 4], [0, 0, 10, 0, 0], [0, 2, 6, 2, 2]]))
    assert scores[0] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert scores[1] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # undefined: 0
    assert scores[2] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


# --- a tiny fit ---------------------------------------------------------------------------------------------------

VOCAB, WIDTH = 40, 6


def batches(seed: int, rows: int) -> list[dict[str, torch.Tensor]]:
    """Token t in 2..13 signals label t % 3 (most of the time); the rest is noise; some rows have no label."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(14, VOCAB, (rows, WIDTH), generator=generator)
    labels = (torch.rand(rows, 3, generator=generator) < torch.tensor([0.5, 0.3, 0.1])).float()
    for i in range(rows):
        for c in labels[i].nonzero().flatten().tolist():
            ids[i, c] = 2 + c + 3 * int(torch.randint(0, 4, (), generator=generator))
    return [{"input_ids": ids[i], "index": torch.tensor(i), "labels": labels[i]} for i in range(rows)]


class TinyData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.splits = {"train": batches(0, 96), "val": batches(1, 64), "test": batches(2, 64)}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=32)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=32)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def module(**options) -> TextClassifier:
    torch.manual_seed(0)
    network = MLP(VOCAB, 3, 0, embedding_dim=8, hidden_dims=[], dropout=0.0)
    return TextClassifier(network, lr_scheduler=None, label_names=NAMES, multi_label=True, **options)


def trainer(tmp_path, **options) -> pl.Trainer:
    defaults = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "max_epochs": 3}
    return pl.Trainer(default_root_dir=tmp_path, **{**defaults, **options})


def test_new_module_carries_untuned_thresholds_and_predicts_probabilities() -> None:
    classifier = module()
    assert classifier.hparams["multi_label"] is True
    assert classifier.state_dict()["thresholds"].tolist() == [0.5, 0.5, 0.5]
    batch = next(iter(TinyData().predict_dataloader()))
    out = classifier.predict_step(batch, 0)
    assert out["probs"].shape == (32, 3) and torch.equal(out["index"], batch["index"])
    torch.testing.assert_close(out["probs"], torch.sigmoid(classifier(batch["input_ids"])))
    assert not torch.allclose(out["probs"].sum(dim=1), torch.ones(32))  # sigmoid, not softmax


@pytest.mark.parametrize("mode", ["per_label", "global"])
def test_fit_tunes_thresholds_on_dev_and_test_uses_the_checkpoints(tmp_path, mode: str) -> None:
    data = TinyData()
    classifier = module(threshold_mode=mode)
    logged: list[dict[str, float]] = []

    class Record(pl.Callback):
        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/f1_macro", mode="max")
    fit = trainer(tmp_path, callbacks=[checkpoint, Record(), ClassificationReport()], num_sanity_val_steps=2)
    fit.fit(classifier, data)
    assert len(logged) == 3 and {"val/f1_macro", "val/f1_micro", "val/map", "val/loss", "val/f1_macro_best"} <= set(
        logged[0]
    )
    assert {"train/f1_micro", "train/loss_epoch"} <= set(logged[-1])
    assert set(fit.callback_metrics) == set(MULTI_LABEL_LOGGED_METRICS)  # what the config check lets a monitor name
    thresholds = classifier.thresholds.tolist()
    assert all(t in GRID.tolist() for t in thresholds) and thresholds != [0.5, 0.5, 0.5]
    if mode == "global":
        assert len(set(thresholds)) == 1

    with torch.serialization.safe_globals([torch.optim.Adam]):
        saved = torch.load(checkpoint.best_model_path, weights_only=True)
    assert saved["hyper_parameters"]["multi_label"] is True
    best = max(logged, key=lambda values: values["val/f1_macro"])
    assert checkpoint.best_model_score.item() == pytest.approx(best["val/f1_macro"])
    # test from the checkpoint uses its thresholds: the same scores as plain Python at them
    restored = module(threshold_mode=mode)
    with torch.serialization.safe_globals([torch.optim.Adam]):  # the optimizer class of a module built in Python
        tested = trainer(tmp_path, callbacks=[ClassificationReport()]).test(
            restored, data, ckpt_path=checkpoint.best_model_path, verbose=False
        )[0]
    assert restored.thresholds.tolist() == saved["state_dict"]["thresholds"].tolist()
    with torch.no_grad():
        restored.eval()
        ids = torch.stack([row["input_ids"] for row in data.splits["test"]])
        probs = torch.sigmoid(restored(ids)).tolist()
    truth = [row["labels"].tolist() for row in data.splits["test"]]
    expected = plain_metrics(probs, truth, restored.thresholds.tolist())
    assert {k: v for k, v in tested.items() if k != "test/loss"} == pytest.approx(expected, abs=1e-5)

    with open(tmp_path / "test_per_label.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == NAMES
    macro = sum(float(row["f1"]) for row in rows) / 3
    assert macro == pytest.approx(tested["test/f1_macro"], abs=1e-6)
    assert [int(row["support"]) for row in rows] == [int(sum(y[c] for y in truth)) for c in range(3)]


def test_sanity_check_does_not_tune(tmp_path) -> None:
    classifier = module()
    trainer(tmp_path, max_steps=0, num_sanity_val_steps=2, enable_checkpointing=False).fit(classifier, TinyData())
    assert classifier.thresholds.tolist() == [0.5, 0.5, 0.5]
    trainer(tmp_path, enable_checkpointing=False).validate(classifier, TinyData(), verbose=False)
    assert classifier.thresholds.tolist() != [0.5, 0.5, 0.5]  # a validation run tunes as fit's validations do


def test_labels_of_the_other_task_are_refused() -> None:
    from textcls.errors import UserError

    with pytest.raises(UserError, match=r"hold single labels but --model\.multi_label is true"):
        module()._loss(torch.zeros(2, 3), torch.tensor([0, 2]))
    single = TextClassifier(MLP(VOCAB, 3, 0), label_names=NAMES)
    with pytest.raises(UserError, match=r"hold multi-hot labels but --model\.multi_label is false"):
        single._loss(torch.zeros(2, 3), torch.zeros(2, 3))


def test_threshold_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="threshold_mode must be 'per_label' or 'global'"):
        module(threshold_mode="best")


@pytest.mark.slow  # W&B starts its service process
def test_per_label_table_goes_to_a_wandb_run(tmp_path, monkeypatch) -> None:
    wandb = pytest.importorskip("wandb")
    from pytorch_lightning.loggers import WandbLogger
    from wandb_reader import read_run, wait_until_finished

    for name in [k for k in __import__("os").environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing leaves the machine
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_X_DISABLE_UPDATE_CHECK", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    trainer(tmp_path, logger=logger, callbacks=[ClassificationReport()]).test(module(), TinyData(), verbose=False)
    wandb.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    wait_until_finished(run_file)
    history = read_run(run_file)["history"]
    assert any("test/per_label" in row for row in history)
    assert not any("test/confusion_matrix_table" in row for row in history)  # single-label only
    assert any("test/f1_macro" in row for row in history)


def test_resume_from_last_continues_as_an_uninterrupted_fit(tmp_path) -> None:
    class InOrder(TinyData):  # no shuffling: without textcls' fault tolerance the order would restart differently
        def train_dataloader(self) -> DataLoader:
            return DataLoader(self.splits["train"], batch_size=16)

    def run(root, epochs: int, ckpt_path=None) -> tuple[TextClassifier, dict[str, float]]:
        classifier = module(class_weights="balanced")
        classifier.class_weights.copy_(torch.tensor([1.0, 2.5, 9.0]))  # as initialise_from_data would on a fresh fit
        if ckpt_path is not None:
            classifier.class_weights.fill_(1.0)  # the checkpoint's must come back
        classifier.initialised_from_data = True
        last = pl.callbacks.ModelCheckpoint(dirpath=root, save_last=True)
        fit = trainer(root, max_epochs=epochs, callbacks=[last], num_sanity_val_steps=0)
        with torch.serialization.safe_globals([torch.optim.Adam]):
            fit.fit(classifier, InOrder(), ckpt_path=ckpt_path)
        return classifier, {k: float(v) for k, v in fit.callback_metrics.items()}

    straight, straight_metrics = run(tmp_path / "straight", 2)
    run(tmp_path / "first", 1)
    resumed, resumed_metrics = run(tmp_path / "second", 2, ckpt_path=tmp_path / "first" / "last.ckpt")
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert resumed.class_weights.tolist() == [1.0, 2.5, 9.0]
    assert resumed_metrics == straight_metrics  # train/f1_micro at the thresholds tuned after epoch 1 included
