"""`--predictions.keep_columns`: input columns of the predict file carried into predictions.csv, in input order."""

from __future__ import annotations

import csv
import subprocess

import pytest
from helpers import TEXTCLS, labelled_rows, write_rows

from textcls.cli import main

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def checkpoint(trained):
    return trained("mlp", "--model.model.init_args.embedding_dim", "8")


@pytest.fixture
def predict_file(tmp_path):
    # The user's ids are not row numbers, and the texts are not in id order.
    rows = [
        {"id": f"doc-{(i * 7) % 23}", "text": r["text"], "source": f"s{i % 3}"} for i, r in enumerate(labelled_rows(23))
    ]
    return write_rows(tmp_path / "predict.csv", rows), rows


def predict(checkpoint, predict_file, tmp_path, *extra):
    main(["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(predict_file),
          "--data.eval_batch_size", "4", "--data.cache_dir", str(tmp_path / "cache"),
          "--runs_root", str(tmp_path / "runs"), *QUIET, *extra])  # fmt: skip
    (written,) = (tmp_path / "runs").rglob("predictions.csv")
    return list(csv.DictReader(written.open(encoding="utf-8")))


def test_kept_columns_come_first_in_input_order(checkpoint, predict_file, tmp_path):
    path, rows = predict_file
    plain = predict(checkpoint, path, tmp_path / "plain")
    kept = predict(checkpoint, path, tmp_path / "kept", "--predictions.keep_columns", "[source, id]")
    assert list(kept[0]) == [
        "source",
        "id",
        "label",
        "probability",
        "p_neg",
        "p_pos",
    ]  # the user's id, not a row number
    assert [(r["id"], r["source"]) for r in kept] == [(r["id"], r["source"]) for r in rows]
    assert [r["label"] for r in kept] == [r["label"] for r in plain] and list(plain[0])[:2] == ["id", "label"]


def test_a_column_the_file_lacks_or_a_clash_is_one_line(checkpoint, predict_file, tmp_path, capsys):
    path, _ = predict_file
    for flag, message in (
        ("[id, ident]", f"predict file '{path}' has no column 'ident' (--predictions.keep_columns); its columns are "
                        "id, text, source"),
        ("[label]", "predictions.csv has a column 'label' of its own (--predictions.keep_columns)"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            predict(checkpoint, path, tmp_path, "--predictions.keep_columns", flag)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert exit_info.value.code == 2 and len(lines) == 1 and message in lines[0], err
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*-predict"))  # no run left


@pytest.mark.slow
def test_kept_columns_under_two_ddp_processes(checkpoint, predict_file, tmp_path):
    path, rows = predict_file
    result = subprocess.run(
        [TEXTCLS, "predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(path),
         "--runs_root", str(tmp_path / "runs"), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
         "--trainer.strategy", "ddp", "--data.eval_batch_size", "4", "--predictions.keep_columns", "[id]", *QUIET],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = (tmp_path / "runs").rglob("predictions.csv")
    got = list(csv.DictReader(written.open(encoding="utf-8")))
    assert list(got[0])[:3] == ["id", "label", "probability"]
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    assert [p.name for p in written.parent.iterdir() if p.name.endswith(".tmp")] == []
