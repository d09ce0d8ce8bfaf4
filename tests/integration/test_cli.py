"""The `textcls` command end to end: in-process through LightningCLI and as a real subprocess."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TEXTCLS, labelled_rows, main_error_line, write_rows

from textcls.checkpoint import DATA_STATE_KEY
from textcls.cli import TextclsCLI, main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["configs/textcnn.yaml", "configs/mlp.yaml"]


@pytest.fixture
def data_files(tmp_path):
    return {
        "train": write_rows(tmp_path / "train.csv", labelled_rows(120)),
        "test": write_rows(tmp_path / "test.jsonl", labelled_rows(30)),
    }


def _args(config, tmp_path, data_files, *extra):
    return [
        "--config",
        str(ROOT / config),
        "--data.train_file",
        str(data_files["train"]),
        "--data.test_file",
        str(data_files["test"]),
        "--runs_root",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def run_textcls(*args, cwd=ROOT, timeout=300):
    return subprocess.run([TEXTCLS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("config", CONFIGS)
def test_fit_in_process_fast_dev_run(config, tmp_path, data_files):
    cli = TextclsCLI(
        args=["fit", *_args(config, tmp_path, data_files, "--config", str(ROOT / "configs/debug/fast.yaml"))]
    )
    assert cli.trainer.global_step == 1
    assert cli.model.model.embedding.num_embeddings == cli.datamodule.vocab_size  # linked, never typed


def test_override_reaches_the_instantiated_optimizer(tmp_path, data_files):
    cli = TextclsCLI(
        args=[
            "fit",
            *_args("configs/textcnn.yaml", tmp_path, data_files, "--config", str(ROOT / "configs/debug/fast.yaml")),
            "--model.optimizer.lr",
            "0.003",
            "--model.optimizer.betas",
            "[0.8, 0.99]",
            "--data.batch_size",
            "16",
        ]
    )
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 0.003
    assert tuple(optimizer.defaults["betas"]) == (0.8, 0.99)
    assert optimizer.defaults["fused"] is True  # CPU supports the fused kernel, and the user did not turn it off
    assert cli.datamodule.batch_size == 16


@pytest.mark.slow
def test_console_script_fits(tmp_path, data_files):
    # The script itself is the subject here; both configs fit in-process above.
    config = "configs/textcnn.yaml"
    result = run_textcls("fit", *_args(config, tmp_path, data_files, "--config", "configs/debug/fast.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_python_dash_m_is_the_same_program():
    result = subprocess.run([sys.executable, "-m", "textcls", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "{fit,validate,test,predict}" in result.stdout


def _printed_config(capsys, *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    out = capsys.readouterr()
    assert exit_info.value.code in (0, None), out.err[-2000:]
    return out.out


def test_print_config_round_trips(tmp_path, data_files, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first = _printed_config(capsys, *_args("configs/textcnn.yaml", tmp_path, data_files))
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    second = _printed_config(capsys, "--config", str(saved))
    assert yaml.safe_load(second) == yaml.safe_load(first)
    assert yaml.safe_load(first)["model"]["optimizer"]["class_path"] == "torch.optim.Adam"


@pytest.mark.slow
def test_checkpoint_predictions_match_the_in_memory_model(tmp_path, data_files, monkeypatch):
    cli = TextclsCLI(
        args=["fit", *_args("configs/textcnn.yaml", tmp_path, data_files, "--trainer.max_epochs", "2")]
    )  # test_after_fit loads best.ckpt into cli.model
    run_dir = Path(cli.trainer.default_root_dir)
    best = run_dir / "checkpoints" / "best.ckpt"
    texts = ["the film was great number3", "the film was dull", "", "unseen words only here"]
    predict_file = tmp_path / "texts.txt"
    predict_file.write_text("\n".join(texts) + "\n")

    model = cli.model.eval()
    ids = cli.datamodule.tokenizer.encode_texts(texts, cli.datamodule.max_length)
    width = max(max(len(r) for r in ids), 1)
    batch = torch.tensor([r + [0] * (width - len(r)) for r in ids])
    with torch.no_grad():
        expected = torch.softmax(model(batch), dim=-1)

    monkeypatch.chdir(tmp_path)
    main(["predict", "--ckpt_path", str(best), "--data.predict_file", str(predict_file),
          "--runs_root", str(tmp_path / "runs")])  # fmt: skip
    written = next((tmp_path / "runs").glob("*/*-predict/predictions.csv"))
    rows = list(csv.DictReader(written.open()))
    names = cli.datamodule.label_names
    assert [int(r["id"]) for r in rows] == list(range(len(texts)))
    assert [r["label"] for r in rows] == [names[i] for i in expected.argmax(-1).tolist()]
    got = torch.tensor([[float(r[f"p_{n}"]) for n in names] for r in rows])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # Self-contained and safe to load: plain data only.
    checkpoint = torch.load(best, weights_only=True)
    # where Lightning stored the DataModule's state is where textcls.checkpoint reads it
    assert checkpoint[DATA_STATE_KEY]["label_names"] == names


@pytest.mark.parametrize(
    ("make_input", "expected"),
    [
        (lambda p: p / "missing.csv", "does not exist"),
        (lambda p: write_rows(p / "cols.csv", [{"review": "a", "label": "x"}]), "columns found: review, label"),
        (lambda p: ((p / "empty.csv").write_text("") and p / "empty.csv") or p / "empty.csv", "is empty"),
    ],
    ids=["missing-file", "missing-column", "empty-file"],
)
def test_bad_input_gives_one_clear_line(tmp_path, make_input, expected, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = make_input(tmp_path)
    textcnn = str(ROOT / "configs/textcnn.yaml")
    argv = ["fit", "--config", textcnn, "--data.train_file", str(path), "--runs_root", str(tmp_path / "runs")]
    error = main_error_line(capsys, argv)
    assert expected in error and str(path.name) in error
    assert not any((tmp_path / "runs").glob("*/*")), "a failed run must not leave a run directory"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--model.class_weights", "[1.0]"], "give one weight per class"),
        (["--model.model.init_args.dropout", "1.5"], "dropout must be in [0, 1)"),
        (["--model.lr_scheduler_interval", "bogus"], "model.lr_scheduler_interval"),
    ],
    ids=["class-weights", "model-dropout", "scheduler-interval"],
)
def test_bad_model_settings_give_a_clear_error(tmp_path, data_files, override, expected, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *_args("configs/textcnn.yaml", tmp_path, data_files), *override])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in err
    assert expected in err
    assert not any((tmp_path / "runs").glob("*/*")), "a failed run must not leave a run directory"


def _callback_types(cli):
    return {type(c).__name__ for c in cli.trainer.callbacks}


def test_default_callbacks_are_a_list_that_a_config_replaces_or_extends(tmp_path, data_files):
    from textcls.cli import DEFAULT_CALLBACKS

    fast = ("--config", str(ROOT / "configs/debug/fast.yaml"))
    default = TextclsCLI(args=["fit", *_args(CONFIGS[1], tmp_path, data_files, *fast)])
    names = {entry["class_path"].rsplit(".", 1)[1] for entry in DEFAULT_CALLBACKS}
    assert names <= _callback_types(default)
    written = yaml.safe_load((ROOT / "configs/callbacks/default.yaml").read_text())["trainer"]["callbacks"]
    assert [c["class_path"] for c in written] == [c["class_path"] for c in DEFAULT_CALLBACKS]

    minimal = ("--config", str(ROOT / "configs/callbacks/minimal.yaml"))
    cli = TextclsCLI(args=["fit", *_args(CONFIGS[1], tmp_path, data_files, *fast, *minimal)])
    assert cli.trainer.global_step == 1
    assert "ClassificationReport" not in _callback_types(cli) and "WandbWatch" not in _callback_types(cli)
    assert {"EpochSummary", "FaultTolerance", "ResumeCheckpoint"} <= _callback_types(cli)

    no_fault = tmp_path / "no_fault.yaml"
    no_fault.write_text("trainer:\n  callbacks:\n    - class_path: textcls.callbacks.EpochSummary\n")
    cli = TextclsCLI(args=["fit", *_args(CONFIGS[1], tmp_path, data_files, *fast, "--config", str(no_fault))])
    assert cli.trainer.global_step == 1 and "FaultTolerance" not in _callback_types(cli)

    added = ("--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/loss")
    cli = TextclsCLI(args=["fit", *_args(CONFIGS[1], tmp_path, data_files, *fast, *minimal, *added)])
    assert {"EpochSummary", "FaultTolerance", "EarlyStopping"} <= _callback_types(cli)


def test_print_config_shows_the_default_callbacks(tmp_path, data_files, capsys):
    from textcls.cli import DEFAULT_CALLBACKS, main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *_args(CONFIGS[0], tmp_path, data_files), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [c["class_path"] for c in printed["trainer"]["callbacks"]] == [c["class_path"] for c in DEFAULT_CALLBACKS]
    assert printed["speedups"] == {"quiet_profiler": True, "throttle_progress_bar": True, "skip_idle_hooks": True}
