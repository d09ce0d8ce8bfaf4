"""`--model.model.init_args.sparse true` through `textcls fit` (in-process): Adagrad trains every layer and saves
a checkpoint a dense MLP loads; optimizers and settings that cannot train sparse gradients end with one error line;
`nb_weighting` counts the training split at the start of a fresh fit (not of a resumed one) and serves with it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import NEGATIVE, POSITIVE, labelled_rows, main_error_line, write_rows

from textcls.cli import main
from textcls.inference import load_classifier
from textcls.models import MLP
from textcls.optim import SPARSE_GROUP

SPARSE_MLP = [
    "--config",
    str(Path(__file__).resolve().parents[2] / "configs" / "mlp.yaml"),
    "--model.model.init_args.sparse",
    "true",
    "--model.model.init_args.ngram_buckets",
    "997",
    "--model.model.init_args.ngram_order",
    "3",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.max_epochs",
    "1",
]
ADAGRAD = ["--model.optimizer", "torch.optim.Adagrad", "--model.optimizer.lr", "0.01"]
NO_CLIPPING = ["--trainer.gradient_clip_val", "null"]


@pytest.fixture
def train_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_rows(tmp_path / "train.csv", labelled_rows(120))


def fit_args(tmp_path: Path, train_file: Path, *extra: str) -> list[str]:
    return ["fit", *SPARSE_MLP, "--data.train_file", str(train_file), "--runs_root", str(tmp_path / "runs"), *extra]


@pytest.mark.slow
def test_sparse_fit_with_adagrad_trains_every_layer(tmp_path: Path, train_file: Path, capsys) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning reaches the list, however often it was shown before
        main(fit_args(tmp_path, train_file, *ADAGRAD, *NO_CLIPPING))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # torch's warning, silenced by choosing its default
    assert not [w for w in caught if "Sparse invariant checks" in str(w.message)] and "Sparse invariant" not in err

    checkpoint = torch.load(next((tmp_path / "runs").glob("mlp/*/checkpoints/last.ckpt")), weights_only=True)
    optimizer = checkpoint["optimizer_states"][0]
    assert [bool(group.get(SPARSE_GROUP)) for group in optimizer["param_groups"]] == [False, False, True]
    for group in optimizer["param_groups"]:  # dense classifier layers and sparse tables alike took Adagrad steps
        for index in group["params"]:
            assert optimizer["state"][index]["sum"].abs().sum() > 0, f"parameter {index} never got a gradient"

    # the weights load into the same MLP built dense: sparse changes the training step, not the checkpoint
    init_args = dict(checkpoint["hyper_parameters"]["model"]["init_args"], sparse=False)
    dense = MLP(**init_args)
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    dense.load_state_dict(weights)  # strict: every key present, none extra
    assert not torch.equal(dense.ngram_embedding.weight, MLP(**init_args).ngram_embedding.weight)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ([], "--model.optimizer Adam cannot train the sparse embeddings"),  # the config's default
        (["--model.optimizer", "torch.optim.SparseAdam"], "SparseAdam does not support dense gradients"),
    ],
    ids=["adam", "sparse-adam"],
)
def test_optimizer_that_cannot_train_sparse_tables_gives_one_line(
    tmp_path: Path, train_file: Path, optimizer: list[str], expected: str, capsys
) -> None:
    error = main_error_line(capsys, fit_args(tmp_path, train_file, *optimizer, *NO_CLIPPING))
    assert expected in error
    assert "--model.model.init_args.sparse true" in error and "torch.optim.Adagrad" in error
    assert not list((tmp_path / "runs").glob("*/*"))  # refused before anything is written: no run directory


def test_gradient_clipping_with_sparse_tables_gives_one_line(tmp_path: Path, train_file: Path, capsys) -> None:
    error = main_error_line(capsys, fit_args(tmp_path, train_file, *ADAGRAD))  # configs/mlp.yaml clips at 1.0
    assert "--trainer.gradient_clip_val 1.0" in error and "--trainer.gradient_clip_val null" in error
    assert not list((tmp_path / "runs").glob("*/*"))


@pytest.mark.slow
def test_nb_weighting_counts_a_fresh_fit_only_and_predict_uses_the_weights(tmp_path: Path, train_file: Path) -> None:
    nb = ["--model.model.init_args.nb_weighting", "true", *ADAGRAD, *NO_CLIPPING]
    main(fit_args(tmp_path, train_file, *nb))
    last = next((tmp_path / "runs").glob("mlp/*/checkpoints/last.ckpt"))
    counted = torch.load(last, weights_only=True)["state_dict"]
    classifier = load_classifier(last)
    vocab = {token: i for i, token in enumerate(classifier.tokenizer.vocab)}
    weights = counted["model.nb_unigram"]
    # a sentiment word is in texts of one class only, "the" in every text
    assert weights[vocab[POSITIVE[0]]] > 2 * weights[vocab["the"]]
    assert weights[vocab[NEGATIVE[0]]] > 2 * weights[vocab["the"]]
    assert counted["model.nb_ngram"].max() > 1  # n-gram buckets counted too
    # served with the counted weights: a clear text gets its class
    assert [p["label"] for p in classifier.predict([f"the film was {POSITIVE[0]}", f"the film was {NEGATIVE[0]}"])] == [
        "pos",
        "neg",
    ]

    # A resumed fit keeps the checkpoint's weights even on other training data (a recount would change them); `last`
    # never picks a run trained on other data, so the checkpoint is named.
    fewer = write_rows(tmp_path / "fewer.csv", labelled_rows(120)[:30])
    main(fit_args(tmp_path, fewer, *nb, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    newest = max((tmp_path / "runs").glob("mlp/*/checkpoints/last.ckpt"), key=lambda path: path.stat().st_mtime_ns)
    after = torch.load(newest, weights_only=True)
    assert after["epoch"] == 1  # the second epoch ran
    torch.testing.assert_close(after["state_dict"]["model.nb_unigram"], weights)
