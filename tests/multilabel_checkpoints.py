"""Multi-label checkpoints for the prediction, export and serving tests, made by hand from a short single-label fit.

Until TextClassifier trains multi-label models itself, a 3-class single-label checkpoint is rewritten the way a
multi-label one is recorded: `hyper_parameters["multi_label"]`, the `thresholds` buffer in the state_dict and the
data state's `"multi_label"`. Its weights were trained with a softmax, but a sigmoid of each logit is still a
well-defined, text-dependent probability per label, which is all these tests need.
"""

from __future__ import annotations

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
            "--test_after_fit", "false", *more,
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


def multi_label_checkpoint(workdir: Path, config: str = "configs/mlp.yaml", *more: str) -> Path:
    """A 3-label multi-label checkpoint (labels LABELS, thresholds THRESHOLDS) under `workdir`."""
    return as_multi_label(train_single_label(workdir, config, *more), workdir / "multilabel.ckpt")
