"""The search space of a W&B sweep config (configs/sweeps/*.yaml), read so `make sweep-local` (sweep_local.py)
samples the same parameters with Optuna; plus the dict helpers that turn a sampled set into a LightningCLI config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SWEEP_DISTRIBUTIONS = ("values", "uniform", "log_uniform_values", "int_uniform")


def sweep_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """The `parameters` of a W&B sweep config, each checked to use a distribution textcls can also sample locally."""
    parameters = (yaml.safe_load(Path(path).read_text()) or {}).get("parameters") or {}
    for name, spec in parameters.items():
        kind = sweep_distribution(spec)
        if kind not in SWEEP_DISTRIBUTIONS:
            raise ValueError(f"{path}: parameter {name!r} uses {kind!r}; use one of {', '.join(SWEEP_DISTRIBUTIONS)}.")
        if kind != "values" and not spec["min"] < spec["max"]:
            raise ValueError(f"{path}: parameter {name!r} needs min < max, got {spec['min']} and {spec['max']}.")
    return parameters


def sweep_distribution(spec: dict[str, Any]) -> str:
    if "values" in spec:
        return "values"
    return str(spec.get("distribution", "int_uniform" if isinstance(spec.get("min"), int) else "uniform"))


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"model.optimizer.init_args.lr": 1e-3} -> {"model": {"optimizer": {"init_args": {"lr": 1e-3}}}}."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
