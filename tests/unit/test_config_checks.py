"""A bad configuration value is one error line naming the key, before any data is read or anything is written."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import torch
from helpers import labelled_rows, write_rows
from jsonargparse import Namespace

from textcls.cli import TextclsCLI, main
from textcls.config_checks import LOGGED_METRICS, check_config, check_config_files
from textcls.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "configs/trainer"
MLP = ["--config", str(ROOT / "configs/mlp.yaml")]

# The cases of issue 13, through the command line: flag(s) -> what the one error line must name.
THROUGH_THE_CLI = {
    "negative lr": (["--model.optimizer.lr", "-1"], "--model.optimizer.lr"),
    "label smoothing": (["--model.label_smoothing", "2"], "--model.label_smoothing"),
    "class weights": (["--model.class_weights", "[-1.0, 1.0]"], "--model.class_weights"),
    "max_epochs": (["--trainer.max_epochs", "-3"], "--trainer.max_epochs"),
    "plateau monitor": (
        ["--model.lr_scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau", "--model.lr_scheduler_monitor", "val/x"],
        "--model.lr_scheduler_monitor",
    ),
    "cuda on a CPU machine": (["--trainer.accelerator", "cuda"], "--trainer.accelerator cpu"),
}
# More of the same class, on a parsed config: dotted key -> (value, what the message must name).
ON_THE_CONFIG = {
    "model.optimizer.init_args.betas": ((0.9, 1.5), "--model.optimizer.betas[1]"),
    "model.optimizer.init_args.eps": (-1e-8, "--model.optimizer.eps"),
    "model.optimizer.init_args.weight_decay": (float("nan"), "--model.optimizer.weight_decay"),
    "model.optimizer": (  # SGD's own check, which no range rule covers
        Namespace(class_path="torch.optim.SGD", init_args=Namespace(lr=0.1, nesterov=True)),
        "torch.optim.SGD rejects its arguments (Nesterov momentum requires a momentum",
    ),
    "model.lr_scheduler.init_args.warmup_fraction": (1.5, "--model.lr_scheduler.warmup_fraction"),
    "model.lr_scheduler.init_args.min_lr_ratio": (-0.5, "--model.lr_scheduler.min_lr_ratio"),
    "model.model.init_args.dropout": (1.5, "--model.model textcls.models.MLP"),  # the network's own check
    "model.class_weights": ([1.0, float("inf")], "--model.class_weights"),
    "trainer.max_steps": (-5, "--trainer.max_steps"),
    "trainer.accumulate_grad_batches": (0, "--trainer.accumulate_grad_batches"),
    "trainer.limit_val_batches": (1.5, "--trainer.limit_val_batches"),
    "trainer.gradient_clip_val": (-1.0, "--trainer.gradient_clip_val"),
    "checkpoint.monitor": ("val/accuracy", "did you mean val/acc?"),
}


@pytest.fixture
def train_file(tmp_path):
    return write_rows(tmp_path / "train.csv", labelled_rows(40))


@pytest.mark.parametrize("case", [c for c in THROUGH_THE_CLI if "cuda" not in c or not torch.cuda.is_available()])
def test_bad_value_is_one_line_before_anything_is_read_or_written(case, tmp_path, train_file, capsys):
    flags, named = THROUGH_THE_CLI[case]
    args = ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(train_file)]
    args += ["--runs_root", str(tmp_path / "runs"), "--data.cache_dir", str(tmp_path / "cache"), *flags]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()  # no data read, nothing written


def test_hub_dataset_without_the_hub_extra_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "datasets", None)  # what `import datasets` meets without the extra installed
    args = ["fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.dataset", "ag_news"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--runs_root", str(tmp_path / "runs"), "--data.cache_dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--data.dataset ag_news" in lines[0] and "Traceback" not in err, err
    assert "pip install 'textcls[hub]'" in lines[0], err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


class ParseOnly(TextclsCLI):
    """Parses (config files, links, defaults) but builds nothing and makes no run directory."""

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parsed(*args: str):
    return ParseOnly(args=list(args), run=False).config


@pytest.fixture(scope="module")
def mlp_config():
    return parsed(*MLP)


@pytest.mark.parametrize("key", list(ON_THE_CONFIG))
def test_bad_value_on_the_parsed_config(key, mlp_config):
    value, named = ON_THE_CONFIG[key]
    config = copy.deepcopy(mlp_config)
    config[key] = value
    with pytest.raises(UserError, match=re.escape(named)):
        check_config(config, "fit")


def test_early_stopping_monitor_is_checked_too(mlp_config):
    config = parsed(*MLP, "--config", str(PRESETS / "early_stopping.yaml"), "--trainer.callbacks.monitor", "valid/loss")
    with pytest.raises(UserError, match=r"'valid/loss' is never logged \(--trainer\.callbacks\[6\] EarlyStopping"):
        check_config(config, "fit")


# Every shipped experiment and recipe (recipes stack on the experiment of their model), and the CPU presets.
SHIPPED = [["configs/textcnn.yaml"], ["configs/mlp.yaml"]]
MODELS = ("textcnn", "mlp")
SHIPPED += [
    [f"configs/{model}.yaml", str(p.relative_to(ROOT))]
    for p in sorted((ROOT / "configs/benchmarks").glob("*.yaml"))
    # a recipe named for no model (multilabel.yaml) stacks on either
    for model in ([p.stem.split("_")[0]] if p.stem.split("_")[0] in MODELS else MODELS)
]
SHIPPED += [
    ["configs/textcnn.yaml", f"configs/trainer/{name}"]
    for name in ("early_stopping.yaml", "ddp_cpu.yaml", "precision-bf16-mixed.yaml")
]


@pytest.mark.parametrize("configs", SHIPPED, ids=lambda files: "+".join(Path(f).stem for f in files))
def test_every_shipped_config_passes(configs):
    config = parsed(*[arg for name in configs for arg in ("--config", str(ROOT / name))])
    check_config(config, "fit")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        config.trainer.accelerator = "gpu"  # what configs/trainer/gpu.yaml asks for, on this CPU-only machine
        with pytest.raises(UserError, match=r"--trainer\.accelerator gpu\): pass --trainer\.accelerator cpu"):
            check_config(config, "fit")


def test_validate_test_predict_check_their_own_values():
    with pytest.raises(UserError, match=r"--trainer\.limit_test_batches"):
        check_config(parsed(*MLP, "--trainer.limit_test_batches", "-1"), "test")
    with pytest.raises(UserError, match=r"--predictions\.top_k"):
        check_config(parsed(*MLP, "--predictions.top_k", "0"), "predict")
    # Optimizer values matter to fit only: evaluating a checkpoint builds no optimizer.
    check_config(parsed(*MLP, "--model.optimizer.lr", "-1"), "test")


def test_known_metrics_are_exactly_what_a_fit_logs(tmp_path, train_file):
    cli = TextclsCLI(
        args=[
            "fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(train_file),
            "--runs_root", str(tmp_path / "runs"), "--data.cache_dir", str(tmp_path / "cache"),
            "--model.model.init_args.embedding_dim", "8", "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--test_after_fit", "false",
        ]
    )  # fmt: skip
    assert set(cli.trainer.callback_metrics) == set(LOGGED_METRICS)


def test_malformed_yaml_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: 1\n  devices: [1\nmodel: {\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"invalid YAML: .*\({re.escape(str(bad))}:4:6\): fix the syntax there"):
        check_config_files(["fit", "--config", str(bad)])
    listed = tmp_path / "list.yml"
    listed.write_text("- trainer\n- model\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"holds a list, not a mapping of options \({re.escape(str(listed))}\)"):
        check_config_files([f"--config={listed}"])
    check_config_files(["fit", "--config", str(ROOT / "configs/textcnn.yaml"), "--data", "missing.yaml"])
