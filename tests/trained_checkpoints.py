"""Real checkpoints for the inference and export tests: one short `textcls fit` per model config, in-process."""

from __future__ import annotations

from pathlib import Path

from helpers import labelled_rows, write_rows

ROOT = Path(__file__).resolve().parents[1]
# name -> (config file, extra arguments): both models, and the MLP with hashed bigrams as well
MODELS = {
    "textcnn": ("configs/textcnn.yaml", []),
    "mlp": ("configs/mlp.yaml", []),
    "mlp-bigrams": ("configs/mlp.yaml", ["--model.model.init_args.ngram_buckets", "1000"]),
}


def train_checkpoint(workdir: Path, name: str, *more: str) -> Path:
    """Fit `name` for one epoch on a small generated file (`more`: extra CLI arguments); the path of its best.ckpt."""
    from textcls.cli import TextclsCLI

    config, extra = MODELS[name]
    train = write_rows(workdir / "train.csv", labelled_rows(120))
    cli = TextclsCLI(
        args=[
            "fit",
            "--config", str(ROOT / config),
            "--data.train_file", str(train),
            "--runs_root", str(workdir / "runs"),
            "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false",
            "--test_after_fit", "false",
            *extra,
            *more,
        ]
    )  # fmt: skip
    return Path(cli.trainer.default_root_dir) / "checkpoints" / "best.ckpt"
