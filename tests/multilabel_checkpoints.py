"""Multi-label checkpoints for the prediction, export and serving tests.

`multi_label_checkpoint` is a real multi-label fit with known thresholds written in (so tests can state the label
sets). The unit tests of the Python API also rewrite a 3-class single-label checkpoint the way a multi-label one is
recorded (`hyper_parameters["multi_label"]`, the `thresholds` buffer, the data state's `"multi_label"`): its logits
are then the reference a sigmoid is checked against, and broken thresholds can be written into it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from helpers import write_rows

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("anger", "fear", "joy")
THRESHOLDS = (0.4, 0.5, 0.7)
WORDS = {"anger": ["furious", "angry", "mad"], "fear": ["scared", "afraid", "worried"], "joy": ["happy", "glad"]}


def three_label_rows(n: int) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        words = WORDS[label]
        rows.append({"text": f"i am so {words[i % len(words)]} today number{i % 7}", "label": label})
    return rows


def train_single_label(workdir: Path, config: str = "configs/mlp.yaml", *more: str) -> Path:
    """A short fit (8 epochs of 5 batches) on a small 3-label file; the path of its best.ckpt."""
    from textcls.cli import TextclsCLI

    train = write_rows(workdir / "train.csv", three_label_rows(150))
    cli = TextclsCLI(
        args=[
            "fit", "--config", str(ROOT / config), "--data.train_file", str(train),
            "--runs_root", str(workdir / "runs"), "--trainer.max_epochs", "8",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--test_after_fit", "false", "--model.optimizer.lr", str(SHORT_OF_PERFECT_LR), *more,
        ]
    )  # fmt: skip
    return Path(cli.trainer.default_root_dir) / "checkpoints" / "best.ckpt"


def as_multi_label(source: Path, target: Path, thresholds: object = THRESHOLDS) -> Path:
    """`source` rewritten as a multi-label checkpoint at `target`, with these per-label thresholds (any value, so
    tests can write broken ones too: a list is stored as a float32 tensor, anything else as it is)."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["multi_label"] = True
    checkpoint["TextDataModule"]["multi_label"] = True
    if isinstance(thresholds, (list, tuple)):
        thresholds = torch.tensor(thresholds, dtype=torch.float32)
    if thresholds is None:
        checkpoint["state_dict"].pop("thresholds", None)
    else:
        checkpoint["state_dict"]["thresholds"] = thresholds
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


# A rate at which 8 epochs leave the model short of a perfect fit, so thresholds decide some texts (the MLP's default,
# then 0.0215, fitted these keyword texts perfectly and left every threshold where it started).
SHORT_OF_PERFECT_LR = 0.002


def train_multi_label(workdir: Path, config: str = "configs/mlp.yaml", *more: str) -> Path:
    """A short multi-label fit on texts with one or two of LABELS (the words of each); the path of its best.ckpt."""
    from textcls.cli import TextclsCLI

    rows = three_label_rows(150)
    for i, row in enumerate(rows):
        extra = LABELS[(i + 1) % 3] if i % 4 == 0 else None
        row["labels"] = [row.pop("label"), *([extra] if extra else [])]
        if extra:
            row["text"] += " " + WORDS[extra][0]
    train = workdir / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cli = TextclsCLI(
        args=[
            "fit", "--config", str(ROOT / config), "--data.train_file", str(train), "--data.label_column", "labels",
            "--runs_root", str(workdir / "runs"), "--trainer.max_epochs", "8",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--test_after_fit", "false", "--model.optimizer.lr", str(SHORT_OF_PERFECT_LR), *more,
        ]
    )  # fmt: skip
    return Path(cli.trainer.default_root_dir) / "checkpoints" / "best.ckpt"


def multi_label_checkpoint(workdir: Path, config: str = "configs/mlp.yaml", *more: str) -> Path:
    """A 3-label multi-label checkpoint (labels LABELS) of a real fit, with its thresholds set to THRESHOLDS."""
    return as_multi_label(train_multi_label(workdir, config, *more), workdir / "multilabel.ckpt")
