"""The W&B sweep config without a W&B server: sample parameter sets, expand them into command lines with the agent's
own code (wandb.sdk.launch.sweeps.utils), and check that `textcls` parses each one and applies every value."""

from __future__ import annotations

import random
import sys

import pytest
import yaml
from sweep_commands import SWEEP, agent_command, get_dotted, nest, sample, sweep_parameters

from textcls.cli import TextclsCLI

pytest.importorskip("wandb.sdk.launch.sweeps.utils")


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
        got = get_dotted(printed, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, name


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
