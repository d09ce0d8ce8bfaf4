"""Multi-label prediction: the Python API returning label sets, `textcls predict`'s CSV, and bad thresholds.

The checkpoints are made by hand (tests/multilabel_checkpoints.py) until TextClassifier trains multi-label models.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import TEXTCLS, main_error_line
from multilabel_checkpoints import LABELS, THRESHOLDS, as_multi_label, train_single_label

from textcls.callbacks import PredictionWriter
from textcls.cli import main
from textcls.data import DataError
from textcls.errors import UserError
from textcls.inference import load_classifier

TEXTS = ["i am so furious today", "scared and happy", "", "glad glad glad", "so furious and afraid", "mad mad", "   "]

pytestmark = pytest.mark.slow  # one short fit per module


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multilabel")
    single = train_single_label(workdir)
    return {"single": single, "multi": as_multi_label(single, workdir / "multilabel.ckpt")}


def _sigmoid_of_logits(single: Path, texts: list[str]) -> np.ndarray:
    """Reference probabilities: the same weights read as a single-label model, a sigmoid applied by hand."""
    return 1 / (1 + np.exp(-load_classifier(single).logits(texts).astype(np.float64)))


def test_the_api_returns_label_sets_decided_by_each_label_s_threshold(checkpoints):
    clf = load_classifier(checkpoints["multi"])
    assert clf.multi_label and clf.label_names == list(LABELS)
    assert clf.thresholds == pytest.approx(THRESHOLDS)
    expected = _sigmoid_of_logits(checkpoints["single"], TEXTS)
    np.testing.assert_allclose(clf.predict_proba(TEXTS), expected, atol=1e-6)
    records = clf.predict(TEXTS, batch_size=2)
    for record, row in zip(records, expected, strict=True):
        assert set(record) == {"labels", "probabilities"} and isinstance(record["labels"], set)
        assert record["labels"] == {n for n, p, t in zip(LABELS, row, THRESHOLDS, strict=True) if p >= t - 1e-7}
        assert list(record["probabilities"]) == list(LABELS)
        np.testing.assert_allclose(list(record["probabilities"].values()), row, atol=1e-6)
    # the per-label thresholds matter: the test texts get different sets, the empty one included
    sets = [frozenset(r["labels"]) for r in records]
    assert len(set(sets)) >= 3 and frozenset() in sets and max(map(len, sets)) >= 2, sets
    assert [r["labels"] for r in clf.predict(TEXTS, threshold=0.5)] != [set(s) for s in sets]


def test_threshold_overrides_every_label_and_top_k_still_works(checkpoints):
    clf = load_classifier(checkpoints["multi"])
    probs = clf.predict_proba(TEXTS)
    assert all(r["labels"] == set(LABELS) for r in clf.predict(TEXTS, threshold=0.0))
    assert all(r["labels"] == set() for r in clf.predict(TEXTS, threshold=1.0))
    for record, row in zip(clf.predict(TEXTS, threshold=0.45), probs.tolist(), strict=True):
        assert record["labels"] == {n for n, p in zip(LABELS, row, strict=True) if p >= 0.45}
    full = clf.predict(TEXTS)
    for top, whole, row in zip(clf.predict(TEXTS, top_k=2), full, probs.tolist(), strict=True):
        ranked = sorted(zip(LABELS, row, strict=True), key=lambda item: -item[1])[:2]
        assert list(top["probabilities"]) == [name for name, _ in ranked]
        assert list(top["probabilities"].values()) == pytest.approx([p for _, p in ranked])
        assert top["labels"] == whole["labels"]  # top_k trims the probabilities shown, not the decision


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, True, "0.5"])
def test_a_threshold_outside_0_1_is_refused(checkpoints, bad):
    with pytest.raises(DataError, match="threshold must be"):
        load_classifier(checkpoints["multi"]).predict(TEXTS, threshold=bad)


def test_single_label_models_refuse_a_threshold_and_keep_their_records(checkpoints):
    clf = load_classifier(checkpoints["single"])
    assert not clf.multi_label and clf.thresholds is None
    with pytest.raises(DataError, match="threshold applies to multi-label models only; this model is single-label"):
        clf.predict(TEXTS, threshold=0.5)
    for record in clf.predict(TEXTS):
        assert list(record) == ["label", "probability", "probabilities"]
        assert record["probability"] == max(record["probabilities"].values())


def _predict(checkpoint: Path, texts: Path, tmp_path: Path, *more: str) -> list[str]:
    return ["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(texts),
            "--runs_root", str(tmp_path / "runs"), *more]  # fmt: skip


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ([0.3, 1.2, 0.5], "threshold 1 must be from 0 to 1, got 1.2"),
        ([-0.5, 0.5, 0.5], "threshold 0 must be from 0 to 1"),
        ([0.5, 0.5], "must be 3 numbers (one per label), got 2 values"),
        (torch.full((3, 1), 0.5), "without its per-label thresholds"),
        (torch.tensor([1, 0, 1]), "without its per-label thresholds"),
        (None, "without its per-label thresholds ('thresholds': NoneType)"),
    ],
)
def test_bad_thresholds_in_a_checkpoint_are_one_line_naming_the_file(
    checkpoints, tmp_path, monkeypatch, capsys, thresholds, expected
):
    bad = as_multi_label(checkpoints["single"], tmp_path / "bad-thresholds.ckpt", thresholds)
    with pytest.raises(UserError) as caught:
        load_classifier(bad)
    assert expected in str(caught.value) and "bad-thresholds.ckpt" in str(caught.value)
    monkeypatch.chdir(tmp_path)
    texts = tmp_path / "texts.txt"
    texts.write_text("i am so glad\n")
    line = main_error_line(capsys, _predict(bad, texts, tmp_path))
    assert expected in line and "bad-thresholds.ckpt" in line
    assert not any((tmp_path / "runs").glob("*/*")), "nothing may be written"


def test_model_and_data_disagreeing_on_multi_label_is_refused(checkpoints, tmp_path):
    bad = as_multi_label(checkpoints["single"], tmp_path / "half.ckpt")
    checkpoint = torch.load(bad, weights_only=True)
    checkpoint["TextDataModule"]["multi_label"] = False
    torch.save(checkpoint, bad)
    with pytest.raises(UserError, match=r"'.*half\.ckpt' is inconsistent: its model says multi_label=True"):
        load_classifier(bad)


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        (["--predictions.threshold", "1.5"], "1.5 is out of range (--predictions.threshold): expected a number from 0"),
        (["--predictions.threshold", "-0.2"], "(--predictions.threshold): expected a number from 0 to 1"),
        (["--predictions.threshold", "0.5"], "--predictions.threshold applies to multi-label models only"),
    ],
)
def test_predict_refuses_a_bad_or_single_label_threshold(checkpoints, tmp_path, monkeypatch, capsys, more, expected):
    monkeypatch.chdir(tmp_path)
    texts = tmp_path / "texts.txt"
    texts.write_text("i am so glad\n")
    line = main_error_line(capsys, _predict(checkpoints["single"], texts, tmp_path, *more))
    assert expected in line, line
    assert not any((tmp_path / "runs").glob("*/*")), "nothing may be written"


class _MultiLabelStandIn(pl.LightningModule):
    """The predict side of a multi-label TextClassifier per the contract: `label_names`, `multi_label`, a
    `thresholds` buffer, and predict_step giving sigmoid probabilities (the network is the checkpoint's own)."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__()
        clf = load_classifier(checkpoint)
        self.model, self.label_names, self.multi_label = clf.model, clf.label_names, True
        self.register_buffer("thresholds", torch.tensor(clf.thresholds, dtype=torch.float32))

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"index": batch["index"], "probs": torch.sigmoid(self.model(batch["input_ids"]))}


def _write_predictions(checkpoint: Path, tmp_path: Path, **writer_args) -> list[dict[str, str]]:
    clf = load_classifier(checkpoint)
    batches = [
        {"input_ids": clf.encode(TEXTS[start : start + 3]), "index": torch.arange(start, min(start + 3, len(TEXTS)))}
        for start in range(0, len(TEXTS), 3)
    ]
    writer = PredictionWriter(**writer_args)
    trainer = pl.Trainer(
        default_root_dir=tmp_path, logger=False, callbacks=[writer], accelerator="cpu", devices=1,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(batches, batch_size=None)  # the batches as they are
    trainer.predict(_MultiLabelStandIn(checkpoint), dataloaders=loader, return_predictions=False)
    return _read(tmp_path / writer.filename)


def _read(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return list(csv.DictReader(path.open(encoding="utf-8")))


def test_prediction_csv_holds_the_label_set_and_every_probability(checkpoints, tmp_path):
    clf = load_classifier(checkpoints["multi"])
    rows = _write_predictions(checkpoints["multi"], tmp_path / "all")
    assert list(rows[0]) == ["id", "labels", *(f"p_{n}" for n in LABELS)]
    for row, want in zip(rows, clf.predict(TEXTS), strict=True):
        assert set(filter(None, row["labels"].split("|"))) == want["labels"]
        assert row["labels"] == "|".join(n for n in LABELS if n in want["labels"])  # in label order
        got = [float(row[f"p_{n}"]) for n in LABELS]
        np.testing.assert_allclose(got, list(want["probabilities"].values()), atol=1e-6)
    assert any(row["labels"] == "" for row in rows) and any("|" in row["labels"] for row in rows)

    top = _write_predictions(checkpoints["multi"], tmp_path / "top", top_k=2, threshold=0.45)
    assert list(top[0]) == ["id", "labels", "label", "probability", "label_2", "probability_2"]
    for row, want in zip(top, clf.predict(TEXTS, top_k=2, threshold=0.45), strict=True):
        assert set(filter(None, row["labels"].split("|"))) == want["labels"]
        (first, p1), (second, p2) = want["probabilities"].items()
        assert (row["label"], row["label_2"]) == (first, second)
        assert [float(row["probability"]), float(row["probability_2"])] == pytest.approx([p1, p2], abs=1e-6)


def test_prediction_json_lines_hold_the_label_set_as_a_list(checkpoints, tmp_path):
    clf = load_classifier(checkpoints["multi"])
    rows = _write_predictions(checkpoints["multi"], tmp_path, filename="predictions.jsonl")
    assert [list(row) for row in rows] == [["id", "labels", *(f"p_{n}" for n in LABELS)]] * len(TEXTS)
    for i, (row, want) in enumerate(zip(rows, clf.predict(TEXTS), strict=True)):
        assert row["id"] == i and row["labels"] == [n for n in LABELS if n in want["labels"]]
        np.testing.assert_allclose([row[f"p_{n}"] for n in LABELS], list(want["probabilities"].values()), atol=1e-6)
    assert [] in [row["labels"] for row in rows]


def test_single_label_json_lines_also_under_ddp(checkpoints, tmp_path):
    # The single-label keys, written by one process and merged from two DDP ranks' parts alike.
    lines = [f"i am so {word} today" for word in ("glad", "mad", "scared", "happy")] * 5
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(lines) + "\n")
    clf = load_classifier(checkpoints["single"])
    for devices in ("1", "2"):
        result = subprocess.run(
            [TEXTCLS, *_predict(checkpoints["single"], texts, tmp_path / devices), "--trainer.accelerator", "cpu",
             "--trainer.devices", devices, "--trainer.strategy", "ddp" if devices == "2" else "auto",
             "--data.eval_batch_size", "4", "--predictions.filename", "predictions.jsonl",
             "--trainer.enable_progress_bar", "false"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        (run_dir,) = (tmp_path / devices / "runs").glob("*/*-predict")
        assert sorted(p.name for p in run_dir.glob("*predictions*")) == ["predictions.jsonl"]
        rows = _read(run_dir / "predictions.jsonl")
        assert [row["id"] for row in rows] == list(range(len(lines)))
        for row, want in zip(rows, clf.predict(lines), strict=True):
            assert list(row) == ["id", "label", "probability", *(f"p_{n}" for n in LABELS)]
            assert row["label"] == want["label"] and row["probability"] == pytest.approx(want["probability"], abs=1e-6)


def test_a_kept_column_named_labels_clashes_with_the_label_set(checkpoints, tmp_path):
    with pytest.raises(UserError, match=r"predictions\.csv has a column 'labels' of its own"):
        _write_predictions(checkpoints["multi"], tmp_path, keep_columns=["labels"])


def test_predict_command_writes_label_sets(checkpoints, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    clf = load_classifier(checkpoints["multi"])
    for i, (more, expected) in enumerate(
        [([], clf.predict(TEXTS)), (["--predictions.threshold", "0.45"], clf.predict(TEXTS, threshold=0.45))]
    ):
        main(_predict(checkpoints["multi"], texts, tmp_path / str(i), *more))
        rows = list(csv.DictReader(next((tmp_path / str(i) / "runs").glob("*/*-predict/predictions.csv")).open()))
        assert list(rows[0]) == ["id", "labels", *(f"p_{n}" for n in LABELS)]
        assert [set(filter(None, row["labels"].split("|"))) for row in rows] == [r["labels"] for r in expected]
        got = [[float(row[f"p_{n}"]) for n in LABELS] for row in rows]
        np.testing.assert_allclose(got, [list(r["probabilities"].values()) for r in expected], atol=1e-6)
