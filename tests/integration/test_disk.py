"""Disk: `best.ckpt` holds what evaluation, prediction and export need and no optimizer state; `last.ckpt` stays
complete for resume (tests/integration/test_resume.py checks that it resumes bit-identically)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import labelled_rows, write_rows

from textcls.cli import main
from textcls.inference import load_classifier

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # three in-process commands after one fit: ~25 s here
TRAINING_STATE = ("optimizer_states", "lr_schedulers", "callbacks")
# A hashed-bigram MLP, so the table (and with it Adam's two moments) dominates the file, as in mlp_bigram.yaml.
MLP = ["--config", str(ROOT / "configs/mlp.yaml"), "--model.model.init_args.ngram_buckets", "4000",
       "--model.model.init_args.embedding_dim", "16", "--trainer.max_epochs", "1",
       "--trainer.log_every_n_steps", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict[str, Path]:
    """One fit with the test after it, which loads best.ckpt (ckpt_path="best") into the same process."""
    root = tmp_path_factory.mktemp("disk")
    train = write_rows(root / "train.csv", labelled_rows(160))
    test = write_rows(root / "test.csv", labelled_rows(30, prefix="t"))
    main(["fit", *MLP, "--data.train_file", str(train), "--data.test_file", str(test), "--runs_root",
          str(root / "runs"), "--trainer.enable_progress_bar", "false"])  # fmt: skip
    [run_dir] = (root / "runs" / "mlp").iterdir()
    return {"root": root, "run": run_dir, "train": train, "test": test}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_best_holds_weights_and_data_state_but_no_optimizer_state(fitted):
    best, last = (fitted["run"] / "checkpoints" / name for name in ("best.ckpt", "last.ckpt"))
    best_ckpt, last_ckpt = load(best), load(last)
    for key in ("state_dict", "hyper_parameters", "TextDataModule"):
        assert key in best_ckpt, key
    assert best_ckpt["TextDataModule"]["tokenizer"] and best_ckpt["TextDataModule"]["label_names"] == ["neg", "pos"]
    assert [key for key in TRAINING_STATE if key in best_ckpt] == []
    assert [key for key in TRAINING_STATE if key not in last_ckpt] == []  # last.ckpt: everything resume needs
    assert last_ckpt["optimizer_states"][0]["state"], "Adam's moments are in last.ckpt"
    for name, weights in best_ckpt["state_dict"].items():  # the same weights, once
        torch.testing.assert_close(weights, last_ckpt["state_dict"][name], rtol=0, atol=0)
    assert best.stat().st_size < 0.5 * last.stat().st_size


def test_the_weights_only_best_ckpt_tests_predicts_and_loads(fitted, capsys):
    best = fitted["run"] / "checkpoints" / "best.ckpt"
    runs = str(fitted["root"] / "runs")
    main(["test", "--ckpt_path", str(best), "--data.test_file", str(fitted["test"]), "--runs_root", runs,
          "--trainer.enable_progress_bar", "false"])  # fmt: skip
    assert "test/acc" in capsys.readouterr().out
    main(["predict", "--ckpt_path", str(best), "--data.predict_file", str(fitted["test"]), "--runs_root", runs,
          "--trainer.enable_progress_bar", "false"])  # fmt: skip
    [written] = (fitted["root"] / "runs" / "mlp").glob("*-predict/predictions.csv")
    assert len(list(csv.DictReader(written.open()))) == 30
    [record] = load_classifier(best).predict(["the film was great"])
    assert record["label"] in ("neg", "pos")


def test_fit_resuming_from_best_ckpt_is_one_line_naming_last_ckpt(fitted, capsys):
    best = fitted["run"] / "checkpoints" / "best.ckpt"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "fit",
                *MLP,
                "--data.train_file",
                str(fitted["train"]),
                "--runs_root",
                str(fitted["root"] / "runs"),
                "--trainer.max_epochs",
                "2",
                "--trainer.enable_progress_bar",
                "false",
                "--ckpt_path",
                str(best),
            ]
        )
    assert exited.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "not the optimizer state" in errors[0] and str(fitted["run"] / "checkpoints" / "last.ckpt") in errors[0]
