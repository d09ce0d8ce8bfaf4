"""The W&B agent's view of the sweep config for tests: sampled parameter sets and the command lines the agent runs."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the sweep helpers live beside sweep_local.py, their one user
from sweep_space import nest, sweep_distribution, sweep_parameters  # noqa: E402

SWEEP = ROOT / "configs/sweeps/textcnn.yaml"
__all__ = ["SWEEP", "agent_command", "get_dotted", "nest", "sample", "sweep_parameters"]


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
    import wandb.sdk.launch.sweeps.utils as sweep_utils  # the agent's own expansion code

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


def get_dotted(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config
