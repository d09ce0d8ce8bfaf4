"""The W&B sweep config without a W&B server: sample parameter sets, expand them into command lines with the agent's
own code (wandb.sdk.launch.sweeps.utils), and check that `textcls` parses each one and applies every value."""

from __future__ import annotations

import csv
import math
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import TEXTCLS, labelled_rows, write_rows

from textcls.cli import TextclsCLI

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the sweep helpers live beside sweep_local.py, their one user
from sweep_space import nest, sweep_distribution, sweep_parameters  # noqa: E402

sweep_utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
SWEEP = ROOT / "configs/sweeps/textcnn.yaml"


def sample(parameters: dict, rng: random.Random, corner: str | None = None) -> dict:
    """One parameter set, drawn as the sweep's distributions define; `corner` "low"/"high" takes the extremes."""
    out = {}
    for name, spec in parameters.items():
        kind = sweep_distribution(spec)
        if kind == "values":
            choices = spec["values"]
            out[name] = {"low": choices[0], "high": choices[-1]}.get(corner or "", rng.choice(choices))
        elif corner:
            out[name] = spec["min"] if corner == "low" else spec["max"]
        elif kind == "uniform":
            out[name] = rng.uniform(spec["min"], spec["max"])
        elif kind == "log_uniform_values":
            out[name] = math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))
        elif kind == "int_uniform":
            out[name] = rng.randint(spec["min"], spec["max"])
        else:
            raise AssertionError(f"no sampler for {kind}")
    return out


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The command line the W&B agent runs for one parameter set (its own expansion of ${env}, ${args} ...)."""
    command = sweep_utils.create_sweep_command(sweep["command"])
    variables = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    expanded: list[str] = []
    for part in command:
        if part == "${args}":
            expanded += variables["args"]
        elif part == "${interpreter}":
            expanded.append(sys.executable)  # the agent's "python" is the venv's when `make sweep` runs it
        elif part == "${env}":
            expanded.append("/usr/bin/env")
        else:
            expanded.append(part)
    return expanded


def _get(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.fixture(scope="module")
def sweep():
    return yaml.safe_load(SWEEP.read_text())


def test_sweep_config_is_a_bayes_search_for_val_acc(sweep):
    assert sweep["method"] == "bayes"
    assert sweep["metric"] == {"name": "val/acc", "goal": "maximize"}
    assert "${args}" in sweep["command"]
    names = set(sweep_parameters(SWEEP))
    for wanted in (
        "optimizer.init_args.lr",
        "weight_decay",
        "betas",
        "warmup_fraction",
        "batch_size",
        "dropout",
        "num_filters",
    ):
        assert any(wanted in name for name in names), wanted


@pytest.mark.parametrize("case", ["random-0", "random-1", "random-2", "low", "high"])
def test_agent_command_lines_parse_and_apply_every_value(case, sweep, tmp_path, capsys):
    parameters = sweep_parameters(SWEEP)
    corner = None if case.startswith("random") else case
    values = sample(parameters, random.Random(case), corner)
    command = agent_command(sweep, values)
    assert command[:4] == ["/usr/bin/env", sys.executable, "-m", "textcls"]
    # The real parser of `textcls`, in-process: --print_config prints the resolved config and exits.
    with pytest.raises(SystemExit) as exit_info:
        TextclsCLI(args=[*command[4:], "--print_config"])
    assert exit_info.value.code in (None, 0), capsys.readouterr().err[-2000:]
    printed = yaml.safe_load(capsys.readouterr().out)
    for name, value in values.items():
        got = _get(printed, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name


@pytest.mark.slow
def test_agent_command_runs_as_a_process(sweep, tmp_path):
    values = sample(sweep_parameters(SWEEP), random.Random(7))
    command = agent_command(sweep, values)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [*command, "--print_config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-2000:]}"
    printed = yaml.safe_load(result.stdout)
    assert _get(printed, "model.optimizer.init_args.lr") == pytest.approx(values["model.optimizer.init_args.lr"])
    assert printed["trainer"]["logger"]["class_path"] == "textcls.tracking.WandbLogger"


def test_nest_turns_sweep_keys_into_a_config():
    assert nest({"model.optimizer.init_args.lr": 0.1, "data.batch_size": 8}) == {
        "model": {"optimizer": {"init_args": {"lr": 0.1}}},
        "data": {"batch_size": 8},
    }


def test_unsupported_distribution_is_named(tmp_path):
    bad = tmp_path / "sweep.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"parameters": {"model.optimizer.init_args.lr": {"distribution": "normal", "mu": 0, "sigma": 1}}}
        )
    )
    with pytest.raises(ValueError, match=r"model\.optimizer\.init_args\.lr.*normal"):
        sweep_parameters(bad)


@pytest.mark.slow
def test_sweep_local_writes_trials_and_a_best_config_that_trains(tmp_path):
    train = write_rows(tmp_path / "train.csv", labelled_rows(80))
    out = tmp_path / "search"
    search = [
        sys.executable,
        "benchmarks/sweep_local.py",
        "--out",
        str(out),
        "--trials",
        "3",
        "--epochs",
        "2",
        "--limit-train-batches",
        "2",
        "--startup-trials",
        "1",
        "--data.train_file",
        str(train),
    ]
    result = subprocess.run(search, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [t["number"] for t in trials] == ["0", "1", "2"]
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    for name in sweep_parameters(SWEEP):
        assert name in trials[0]
    best = yaml.safe_load((out / "best.yaml").read_text())
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    winner = max(complete, key=lambda t: float(t["val_acc"]))
    assert best["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(float(winner["model.optimizer.init_args.lr"]))
    assert best["data"]["train_file"] == str(train)

    fit = subprocess.run(
        [
            TEXTCLS,
            "fit",
            "--config",
            str(out / "best.yaml"),
            "--config",
            "configs/debug/fast.yaml",
            "--runs_root",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
