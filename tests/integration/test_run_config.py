"""A run remembers itself: `--ckpt_path last` continues the run it names with its own data and model settings,
test / predict need only --ckpt_path and the input file, and the user's values beat the checkpoint's, in one merge."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

from textcls.cli import TextclsCLI, main

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY = ["--model.model.init_args.embedding_dim", "8", "--model.model.init_args.hidden_dims", "[8]"]


def write_tickets(path: Path, n: int, prefix: str = "") -> Path:
    """A CSV with its own column names and string labels, as a user brings it."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket_id", "subject_line", "category"])
        for i in range(n):
            words, label = [("refund invoice charge", "billing"), ("crash error bug", "tech")][i % 2]
            writer.writerow([f"t{i}", f"{prefix}{words} number{i % 7}", label])
    return path


def fit(tmp_path: Path, *args: str) -> TextclsCLI:
    return TextclsCLI(
        args=["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--runs_root", str(tmp_path / "runs"), *QUIET, *args]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One 1-epoch fit on a CSV with non-default columns and 100 bigram buckets: (tmp dir, run directory)."""
    tmp = tmp_path_factory.mktemp("run")
    train = write_tickets(tmp / "tickets.csv", 120)
    cli = fit(
        tmp, "--data.train_file", str(train), "--data.text_column", "subject_line", "--data.label_column", "category",
        "--model.model.init_args.ngram_buckets", "100", "--trainer.max_epochs", "1", "--test_after_fit", "false",
        *TINY,
    )  # fmt: skip
    return tmp, Path(cli.trainer.default_root_dir)


@pytest.mark.slow
def test_resume_last_continues_with_the_runs_own_data_and_model(trained, capsys):
    tmp, run_dir = trained
    steps_before = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    # The README's command: the experiment's config and a longer budget, no data or model flags repeated.
    cli = fit(tmp, "--ckpt_path", "last", "--trainer.max_epochs", "2", "--test_after_fit", "false")
    assert cli.datamodule.train_file == str(tmp / "tickets.csv")
    assert cli.datamodule.text_columns == ["subject_line"] and cli.datamodule.label_column == "category"
    assert cli.model.model.ngram_buckets == 100  # the run's flag, not configs/mlp.yaml's 0
    assert cli.model.model.embedding.embedding_dim == 8
    assert cli.trainer.global_step > steps_before
    err = capsys.readouterr().err
    assert f"--ckpt_path last: continuing {tmp / 'runs'}" in err.replace("\n", "")


@pytest.mark.slow
def test_last_never_picks_a_run_trained_on_other_data(trained, capsys):
    tmp = trained[0]
    other = write_tickets(tmp / "other.csv", 60, prefix="other ")
    fit(tmp, "--data.train_file", str(other), "--data.text_column", "subject_line", "--data.label_column", "category",
        "--trainer.max_steps", "2", "--test_after_fit", "false", *TINY)  # fmt: skip
    # The newest run is the one on other.csv; naming tickets.csv picks the older run trained on it.
    from textcls.run_config import resolve_last

    argv = ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--runs_root", str(tmp / "runs")]
    chosen = resolve_last([*argv, "--data.train_file", str(tmp / "tickets.csv")], announce=lambda m: None)

    def trained_on(path: Path) -> str:
        return torch.load(path, weights_only=True)["TextDataModule"]["settings"]["train_file"]

    assert trained_on(chosen) == str(tmp / "tickets.csv")
    newest = resolve_last(argv, announce=lambda m: None)
    assert newest != chosen and trained_on(newest) == str(other)
    runs = sorted((tmp / "runs/mlp").iterdir())
    missing = tmp / "never.csv"
    write_tickets(missing, 10)
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--ckpt_path", "last", "--data.train_file", str(missing)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "found no run of experiment 'mlp' to continue that was trained on --data.train_file" in " ".join(err.split())
    assert "Traceback" not in err
    assert sorted((tmp / "runs/mlp").iterdir()) == runs  # no run directory left behind


@pytest.mark.slow
def test_test_and_predict_need_only_the_checkpoint_and_the_file(trained, capsys):
    tmp, run_dir = trained
    best = run_dir / "checkpoints/best.ckpt"
    test_file = write_tickets(tmp / "test.csv", 30, prefix="test ")
    cli = TextclsCLI(args=["test", "--ckpt_path", str(best), "--data.test_file", str(test_file), *QUIET])
    assert cli.datamodule.text_columns == ["subject_line"] and cli.datamodule.label_column == "category"
    assert "test/acc" in cli.trainer.callback_metrics
    assert f"Run directory: {cli.trainer.default_root_dir}" in capsys.readouterr().out  # every subcommand says it
    predict_file = tmp / "predict.csv"
    predict_file.write_text("ticket_id,subject_line\nq1,refund please\nq2,it crashed\n", encoding="utf-8")
    cli = TextclsCLI(args=["predict", "--ckpt_path", str(best), "--data.predict_file", str(predict_file), *QUIET])
    rows = list(csv.DictReader((Path(cli.trainer.default_root_dir) / "predictions.csv").open()))
    assert len(rows) == 2 and {r["label"] for r in rows} <= {"billing", "tech"}


@pytest.mark.slow
def test_command_line_and_config_files_beat_the_checkpoint(trained, tmp_path):
    run_dir = trained[1]
    best = run_dir / "checkpoints/best.ckpt"
    test_file = write_tickets(tmp_path / "test.csv", 20)
    # ckpt_path in a config file counts as much as on the command line
    config = tmp_path / "eval.yaml"
    config.write_text(f"ckpt_path: {best}\nmodel:\n  label_smoothing: 0.2\n", encoding="utf-8")
    cli = TextclsCLI(
        args=["test", "--config", str(config), "--data.test_file", str(test_file),
              "--model.model.init_args.dropout", "0.05", *QUIET]
    )  # fmt: skip
    assert cli.model.label_smoothing == 0.2  # the config file's, not the checkpoint's 0.0
    dropouts = [m.p for m in cli.model.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and set(dropouts) == {0.05}  # the flag's, not the checkpoint's 0.3
    assert cli.model.model.ngram_buckets == 100  # not given by the user: the checkpoint's
    cli = TextclsCLI(
        args=["test", "--config", str(config), "--data.test_file", str(test_file), "--model.label_smoothing", "0.3",
              *QUIET]
    )  # fmt: skip
    assert cli.model.label_smoothing == 0.3  # the flag beats the config file


@pytest.mark.slow
def test_resuming_from_a_checkpoint_of_another_network_is_one_line(trained, capsys):
    tmp, run_dir = trained
    runs = sorted((tmp / "runs/mlp").iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--config", str(ROOT / "configs/debug/fast.yaml"),
              "--runs_root", str(tmp / "runs"), "--ckpt_path", str(run_dir / "checkpoints/last.ckpt"),
              "--model.model.init_args.embedding_dim", "16"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit the network this command builds" in " ".join(err.split()), err
    assert "embedding.weight" in err and "Traceback" not in err
    assert sorted((tmp / "runs/mlp").iterdir()) == runs


def test_a_tampered_checkpoint_cannot_make_textcls_import_a_module(trained, tmp_path, capsys):
    run_dir = trained[1]
    checkpoint = torch.load(run_dir / "checkpoints/best.ckpt", weights_only=True)
    test_file = write_tickets(tmp_path / "test.csv", 10)
    for key in ("optimizer", "lr_scheduler", "model"):
        tampered = dict(checkpoint, hyper_parameters=dict(checkpoint["hyper_parameters"]))
        tampered["hyper_parameters"][key] = {"class_path": "this.Zen", "init_args": {}}
        path = tmp_path / f"evil-{key}.ckpt"
        torch.save(tampered, path)
        sys.modules.pop("this", None)
        commands = (["test", "--data.test_file", str(test_file)], ["predict", "--data.predict_file", str(test_file)])
        for command in commands:
            with pytest.raises(SystemExit) as exit_info:
                main([command[0], "--ckpt_path", str(path), *command[1:], "--runs_root", str(tmp_path / "runs")])
            assert exit_info.value.code == 2
            captured = capsys.readouterr()
            assert "this" not in sys.modules, key  # imported, it prints the Zen of Python
            assert "Beautiful is better than ugly" not in captured.out + captured.err
            assert "names the class 'this.Zen'" in " ".join(captured.err.split())
        from textcls.errors import UserError
        from textcls.inference import load_classifier

        with pytest.raises(UserError, match=r"this\.Zen"):
            load_classifier(path)
        assert "this" not in sys.modules


def test_the_users_own_class_is_trusted_when_they_name_it(trained):
    from textcls.checkpoint import is_allowed_class

    assert is_allowed_class("torch.optim.SGD") and is_allowed_class("torch.optim.lr_scheduler.OneCycleLR")
    assert is_allowed_class("textcls.models.TextCNN") and is_allowed_class("textcls.optim.WarmupCosine")
    assert not is_allowed_class("torch.optim.Optimizer.__init__") and not is_allowed_class("os.system")
    assert not is_allowed_class("torch.optim._functional") and not is_allowed_class("this.Zen")
    assert is_allowed_class("mypkg.MyNet", trusted={"mypkg.MyNet"})


def test_a_fit_that_max_steps_ends_mid_epoch_validates_its_last_step_and_tests_that(tmp_path):
    train, test = write_tickets(tmp_path / "train.csv", 200), write_tickets(tmp_path / "test.csv", 40)
    cli = fit(
        tmp_path, "--data.train_file", str(train), "--data.test_file", str(test), "--data.text_column",
        "subject_line", "--data.label_column", "category", "--trainer.max_steps", "2", *TINY,
    )  # fmt: skip
    assert cli.trainer.global_step == 2
    best = cli.trainer.checkpoint_callback.best_model_path
    assert best and torch.load(best, map_location="cpu", weights_only=True)["global_step"] == 2
    assert "test/acc" in cli.trainer.callback_metrics
