"""The per-class table of a single-label test in the run directory (`test_per_class.csv`), as the terminal shows it;
the multi-label table is tested in test_multilabel_module.py."""

from __future__ import annotations

import csv

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from textcls.models import MLP
from textcls.module import TextClassifier
from textcls.reporting import ClassificationReport


def test_single_label_test_writes_the_per_class_table(tmp_path, capsys) -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (40,), generator=generator)
    ids = torch.randint(5, 30, (40, 6), generator=generator)
    ids[:, 0] = 2 + labels  # a cue word per class, so every class gets some right
    rows = [{"input_ids": ids[i], "index": torch.tensor(i), "labels": labels[i]} for i in range(40)]
    torch.manual_seed(0)
    module = TextClassifier(MLP(30, 3, 0, embedding_dim=8, hidden_dims=[]), label_names=["x", "y", "z"])
    trainer = pl.Trainer(
        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, callbacks=[ClassificationReport()]
    )
    (tested,) = trainer.test(module, DataLoader(rows, batch_size=16), verbose=False)
    with open(tmp_path / "test_per_class.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [row["class"] for row in table] == ["x", "y", "z"]
    assert [int(row["support"]) for row in table] == torch.bincount(labels, minlength=3).tolist()
    macro = sum(float(row["f1"]) for row in table) / 3
    assert abs(macro - tested["test/f1"]) < 1e-6  # the same figures as test/f1 (macro)
    assert "per-class precision / recall / F1" in capsys.readouterr().out
