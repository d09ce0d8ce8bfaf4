"""Multi-label from the command line, in-process: fit on the user's own columns in each format, test and predict
from the checkpoint alone, thresholds tuned on dev and stored, balanced weights, and the tasks refusing each other."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import last_metrics, main_error_line
from multilabel_data import COLUMNS, TAGS, tag_files

from textcls.cli import TextclsCLI

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
MULTI_METRICS = ["test/f1_macro", "test/f1_micro", "test/map", "test/subset_acc", "test/hamming", "test/loss"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One MLP fit on JSON Lines with the user's columns (body, tags), tested after fit."""
    root = tmp_path_factory.mktemp("multilabel")
    files = tag_files(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        cli = TextclsCLI(
            args=["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(files["train"]),
                  "--data.val_file", str(files["val"]), "--data.test_file", str(files["test"]), *COLUMNS,
                  "--trainer.max_epochs", "8", "--data.batch_size", "16", "--runs_root", str(root / "runs"),
                  "--model.optimizer.lr", "0.002", *QUIET]  # short of a perfect fit: thresholds get tuned
        )  # fmt: skip
    return {"cli": cli, "files": files, "run": Path(cli.trainer.default_root_dir)}


def test_fit_logs_the_multi_label_metrics_and_selects_on_macro_f1(fitted):
    cli, run = fitted["cli"], fitted["run"]
    assert cli.model.multi_label and cli.datamodule.label_names == sorted(TAGS)
    found = last_metrics(run)
    assert {"val/f1_macro", "val/f1_micro", "val/map", "val/loss", *MULTI_METRICS} <= set(found)
    assert "val/acc" not in found and "test/acc" not in found
    assert found["test/f1_macro"] >= 0.9 and found["test/map"] >= 0.9  # a keyword per tag: the task is learnable
    assert 0 <= found["test/hamming"] <= 0.1
    assert cli.trainer.checkpoint_callback.monitor == "val/f1_macro"


def test_the_best_checkpoint_carries_thresholds_tuned_on_dev(fitted):
    best = torch.load(fitted["run"] / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    thresholds = best["state_dict"]["thresholds"]
    assert thresholds.shape == (len(TAGS),) and bool(((thresholds > 0) & (thresholds < 1)).all())
    assert not torch.equal(thresholds, torch.full_like(thresholds, 0.5))  # tuned, not the initial value
    assert best["hyper_parameters"]["multi_label"] is True
    assert best["TextDataModule"]["multi_label"] is True


def test_per_label_table_is_written_to_the_run_directory(fitted):
    tables = list(fitted["run"].glob("*per_label*.csv")) + list(fitted["run"].glob("*per_class*.csv"))
    assert tables, sorted(p.name for p in fitted["run"].iterdir())
    with tables[0].open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row[next(iter(row))] for row in rows} >= set(TAGS)


def test_test_from_the_checkpoint_needs_only_the_file(fitted, tmp_path, capsys):
    best = fitted["run"] / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    cli = TextclsCLI(
        args=["test", "--ckpt_path", str(best), "--data.test_file", str(fitted["files"]["test"]),
              "--runs_root", str(tmp_path / "runs"), *QUIET]
    )  # fmt: skip
    assert cli.datamodule.label_column == "tags" and cli.datamodule.text_columns == ["body"]
    tested = last_metrics(Path(cli.trainer.default_root_dir))
    assert tested["test/f1_macro"] == pytest.approx(last_metrics(fitted["run"])["test/f1_macro"], abs=1e-6)
    assert "test/f1_macro" in capsys.readouterr().out  # in the printed metrics table


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_csv_with_a_separator_and_fasttext_lines_train_multi_label(suffix, tmp_path):
    files = tag_files(tmp_path / "data", suffix)
    columns = ["--data.label_separator", "|", *COLUMNS] if suffix == ".csv" else []
    cli = TextclsCLI(
        args=["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(files["train"]),
              "--data.val_file", str(files["val"]), *columns, "--trainer.max_epochs", "2",
              "--runs_root", str(tmp_path / "runs"), *QUIET]
    )  # fmt: skip
    assert cli.model.multi_label and cli.datamodule.label_names == sorted(TAGS)
    assert "val/f1_macro" in last_metrics(Path(cli.trainer.default_root_dir))


def test_balanced_weights_are_computed_from_training_and_stored(fitted, tmp_path):
    files = fitted["files"]
    cli = TextclsCLI(
        args=["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(files["train"]),
              "--data.val_file", str(files["val"]), *COLUMNS, "--model.class_weights", "balanced",
              "--trainer.max_epochs", "1", "--runs_root", str(tmp_path / "runs"), "--test_after_fit", "false", *QUIET]
    )  # fmt: skip
    best = torch.load(Path(cli.trainer.default_root_dir) / "checkpoints" / "best.ckpt", weights_only=True)
    weights = [v for k, v in best["state_dict"].items() if "weight" in k and v.shape == (len(TAGS),)]
    assert weights and not torch.equal(weights[0], torch.ones(len(TAGS)))
    rare, common = sorted(TAGS).index("refund"), sorted(TAGS).index("bug")  # 66 and 110 rows of 240
    assert weights[0][rare] > weights[0][common]


def test_a_single_label_checkpoint_refuses_multi_label_data(trained, fitted, capsys):
    line = main_error_line(
        capsys,
        ["test", "--ckpt_path", str(trained("mlp")), "--data.test_file", str(fitted["files"]["test"]),
         "--data.text_column", "body", "--data.label_column", "tags", *QUIET],
    )  # fmt: skip
    assert "multi-label" in line and "test.jsonl" in line


def test_a_multi_label_checkpoint_refuses_single_label_data(fitted, tmp_path, capsys):
    single = tmp_path / "single.jsonl"
    single.write_text("".join(json.dumps({"body": f"crash {i}", "tags": "bug"}) + "\n" for i in range(5)))
    line = main_error_line(
        capsys, ["test", "--ckpt_path", str(fitted["run"] / "checkpoints" / "best.ckpt"), "--data.test_file",
                 str(single), *QUIET]
    )  # fmt: skip
    assert "one label per row, but the model is multi-label" in line and "single.jsonl" in line


def test_multi_label_false_with_list_labels_is_one_line(fitted, capsys):
    files = fitted["files"]
    line = main_error_line(
        capsys,
        ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(files["train"]), *COLUMNS,
         "--data.multi_label", "false", *QUIET],
    )  # fmt: skip
    assert "--data.multi_label false" in line and "train.jsonl" in line
