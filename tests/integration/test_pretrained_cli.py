"""--model.pretrained_embeddings / --model.freeze_embeddings end to end: CLI fits (in-process) on a small generated file
and a small vector file written by the test (nothing is downloaded)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import labelled_rows, main_error_line, write_rows
from pytorch_lightning import Callback

from textcls.cli import main
from textcls.inference import load_classifier
from textcls.initialisers import initialise_from_data

ROOT = Path(__file__).resolve().parents[2]
DIM = 16
# 13 of the 20 words of labelled_rows ("the film was <sentiment word> number<k>"); "Great" matches "great" lowercased
COVERED = ["the", "film", "was", "Great", "good", "superb", "lovely", "fine", "awful", "bad", "dull", "poor", "boring"]


def _vector_file(path: Path, dim: int = DIM, words: list[str] = COVERED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = {w: rng.normal(0, 0.5, dim).astype(np.float32) for w in [*words, "unrelated", "words"]}
    lines = [f"{len(vectors)} {dim}"] + [w + " " + " ".join(f"{x:.7f}" for x in v) for w, v in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {w.lower(): v for w, v in vectors.items()}


def _args(tmp_path: Path, config: str, *more: str) -> list[str]:
    train = write_rows(tmp_path / "train.csv", labelled_rows(120))
    return [
        "--config", str(ROOT / "configs" / f"{config}.yaml"),
        "--data.train_file", str(train),
        "--data.cache_dir", str(tmp_path / "cache"),
        "--model.model.init_args.embedding_dim", str(DIM),
        "--trainer.max_epochs", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        *more,
    ]  # fmt: skip


class _Snapshot(Callback):
    """The embedding table as training starts (after the vectors were loaded) and when it ends."""

    def on_train_start(self, trainer, pl_module):
        self.start = pl_module.model.embedding.weight.detach().clone()
        self.optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}

    def on_train_end(self, trainer, pl_module):
        self.end = pl_module.model.embedding.weight.detach().clone()


@pytest.mark.parametrize("config", ["textcnn", "mlp"])
@pytest.mark.parametrize("freeze", [True, False])
def test_vectors_fill_the_table_and_freeze_keeps_it(tmp_path: Path, config: str, freeze: bool) -> None:
    from textcls.cli import TextclsCLI

    vectors = _vector_file(tmp_path / "vectors.vec")
    more = ["--model.pretrained_embeddings", str(tmp_path / "vectors.vec"), "--model.freeze_embeddings", str(freeze)]
    more += ["--trainer.default_root_dir", str(tmp_path / "run")]
    cli = TextclsCLI(args=_args(tmp_path, config, *more), run=False)
    snapshot = _Snapshot()
    cli.trainer.callbacks.append(snapshot)
    initialise_from_data(cli.model, cli.datamodule)  # what the CLI's `fit` subcommand does first
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    vocab = cli.datamodule.tokenizer.vocab
    for word, vector in vectors.items():
        if word in vocab:
            torch.testing.assert_close(snapshot.start[vocab.index(word)], torch.from_numpy(vector))
    assert torch.all(snapshot.start[0] == 0) and torch.all(snapshot.end[0] == 0)  # <pad>
    embedding = cli.model.model.embedding.weight
    assert (id(embedding) in snapshot.optimized) is not freeze
    assert embedding.requires_grad is not freeze
    if freeze:
        assert torch.equal(snapshot.end, snapshot.start)
    else:
        changed = (snapshot.end - snapshot.start).abs().amax(dim=1) > 0
        assert changed[vocab.index("great")] and changed[vocab.index("the")]


def _run(capsys, caplog, *args: str) -> str:
    """One in-process `textcls` command; what it printed and logged."""
    capsys.readouterr()
    caplog.clear()
    main(list(args))
    out = capsys.readouterr()
    return out.out + out.err + caplog.text


@pytest.mark.slow
def test_a_checkpoint_trained_with_vectors_works_after_the_file_is_gone(tmp_path: Path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    vector_file = tmp_path / "vectors.vec"
    vectors = _vector_file(vector_file)
    runs = str(tmp_path / "runs")
    fit = _args(tmp_path, "textcnn", "--model.pretrained_embeddings", str(vector_file), "--test_after_fit", "false")
    first = _run(capsys, caplog, "fit", *fit, "--runs_root", runs, "--model.freeze_embeddings", "true")
    assert "pretrained vectors: 13 of 20 vocabulary words (65.0 %) found in" in first
    (run,) = (tmp_path / "runs" / "textcnn").iterdir()
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    vector_file.unlink()

    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\nthe film was awful\n", encoding="utf-8")
    _run(capsys, caplog, "predict", "--ckpt_path", str(best), "--data.predict_file", str(texts), "--runs_root", runs)
    rows = list(csv.DictReader(next((tmp_path / "runs").glob("*/*-predict/predictions.csv")).open()))
    assert len(rows) == 2
    classifier = load_classifier(best)
    assert [r["label"] for r in classifier.predict(["the film was great"])] in (["neg"], ["pos"])
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    vocab = classifier.tokenizer.vocab
    torch.testing.assert_close(state["model.embedding.weight"][vocab.index("the")], torch.from_numpy(vectors["the"]))

    # resuming the fit needs the checkpoint only; it neither reads nor reports the vectors
    resumed = _run(capsys, caplog, "fit", *fit, "--runs_root", runs, "--model.freeze_embeddings", "true",
                   "--trainer.max_epochs", "3", "--ckpt_path", str(last))  # fmt: skip
    assert "pretrained vectors" not in resumed


@pytest.mark.parametrize("case", ["missing", "dimension", "malformed", "no coverage"])
def test_bad_vector_files_end_in_one_error_line(tmp_path: Path, case: str, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "vectors.vec"
    expected = {
        "missing": "does not exist",
        "dimension": f"holds 8-dimensional vectors (its header) but the model's embedding_dim is {DIM}; pass "
        "--model.model.init_args.embedding_dim 8.",
        "malformed": f"{path}:3: malformed line 'film 0.5 0.5': expected a word and {DIM} numbers",
        "no coverage": "none of the 20 vocabulary words has a vector in",
    }[case]
    if case == "dimension":
        _vector_file(path, dim=8)
    elif case == "malformed":
        path.write_text(f"2 {DIM}\nthe {' '.join(['0.5'] * DIM)}\nfilm 0.5 0.5\n", encoding="utf-8")
    elif case == "no coverage":
        _vector_file(path, words=["zebra", "Quokka"])
    args = _args(tmp_path, "mlp", "--model.pretrained_embeddings", str(path), "--runs_root", str(tmp_path / "runs"))
    error = main_error_line(capsys, ["fit", *args])
    assert expected in error, error
    if case in ("missing", "dimension"):  # found by the first-line check, before the run writes anything
        assert not any((tmp_path / "runs").glob("*/*")), "a failed run must not leave a run directory"
