"""Hyperparameter search on this machine, no account: the search space of a W&B sweep config (configs/sweeps/*.yaml)
explored with Optuna (TPE sampler, median pruning after each epoch on the metric the run's checkpoint selects on:
`val/acc`, or `val/f1_macro` for multi-label data). Every trial is a real `textcls fit`
(in-process, so the pruning callback can stop it) in its own run directory.

Outputs, in --out:
  trials.csv   one row per trial: number, state (COMPLETE / PRUNED / FAIL), best val/acc (val_acc; multi-label:
               val_f1_macro), seconds, every parameter
  best.yaml    the experiment config with the best trial's values: `textcls fit --config <out>/best.yaml`

    python benchmarks/sweep_local.py                                 # demo data, 6 short trials
    python benchmarks/sweep_local.py --trials 30 --epochs 6 --limit-train-batches 1.0 \\
        --data.train_file data/train.csv --data.val_file data/dev.csv
Arguments this script does not know (like --data.train_file above) are passed to every `textcls fit`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import Callback
from rich.console import Console
from sweep_space import merge, nest, sweep_distribution, sweep_parameters  # this script's folder, on sys.path

from textcls.cli import TextclsCLI

ROOT = Path(__file__).resolve().parents[1]
console = Console(highlight=False)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", type=Path, default=ROOT / "configs/sweeps/textcnn.yaml", help="W&B sweep config")
    p.add_argument("--config", type=Path, default=ROOT / "configs/textcnn.yaml", help="experiment config searched")
    p.add_argument("--out", type=Path, default=ROOT / "runs/sweep_local", help="where trials.csv and best.yaml go")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (pruning decisions come after each)")
    p.add_argument("--limit-train-batches", default="50", help="batches per epoch (int) or fraction (float)")
    p.add_argument("--max-length", type=int, default=64, help="--data.max_length of every trial")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--startup-trials", type=int, default=3, help="trials before TPE and the pruner kick in")
    return p.parse_known_args(argv)


def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    """One value from a W&B sweep parameter spec, through the matching Optuna distribution."""
    kind = sweep_distribution(spec)
    if kind == "values":
        # Optuna's categorical choices must be scalars; lists (betas) go through their JSON text.
        return json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in spec["values"]]))
    if kind == "int_uniform":
        return trial.suggest_int(name, spec["min"], spec["max"])
    return trial.suggest_float(name, spec["min"], spec["max"], log=kind == "log_uniform_values")


class OptunaPruning(Callback):
    """Report the monitored metric to Optuna after each validation; stop the fit when the pruner says this trial is
    behind. The monitor is the one the run's checkpoint selects on (val/acc, or val/f1_macro for multi-label data)."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val/acc") -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned = False
        self.best = -math.inf

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.best = max(self.best, value)
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True  # a clean stop: Lightning finishes the epoch's bookkeeping


class _TrialCLI(TextclsCLI):
    """TextclsCLI that adds one trial's pruning callback to the trainer it builds."""

    pruning: OptunaPruning

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if trainer.checkpoint_callback is not None and trainer.checkpoint_callback.monitor:
            self.pruning.monitor = trainer.checkpoint_callback.monitor  # the task's metric, as the run selects on
        trainer.callbacks.append(self.pruning)
        return trainer


def _cli_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def main(argv: list[str] | None = None) -> None:
    args, passthrough = parse_args(argv)
    parameters = sweep_parameters(args.sweep)
    args.out.mkdir(parents=True, exist_ok=True)
    limit = float(args.limit_train_batches) if "." in args.limit_train_batches else int(args.limit_train_batches)
    budget = [
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.limit_train_batches={limit}",
        f"--data.max_length={args.max_length}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--test_after_fit=false",
        "--checkpoint.save_last=false",
        f"--runs_root={args.out / 'runs'}",
    ]

    def objective(trial: optuna.Trial) -> float:
        values = {name: suggest(trial, name, spec) for name, spec in parameters.items()}
        pruning = OptunaPruning(trial)
        cli_class = type("TrialCLI", (_TrialCLI,), {"pruning": pruning})
        overrides = [f"--{name}={_cli_value(value)}" for name, value in values.items()]
        start = time.perf_counter()
        cli = cli_class(args=["fit", f"--config={args.config}", *budget, *passthrough, *overrides])
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 1))
        trial.set_user_attr("run_dir", str(cli.trainer.default_root_dir))
        state = "pruned" if pruning.pruned else "done"
        trial.set_user_attr("monitor", pruning.monitor)
        console.print(
            f"[bold]trial {trial.number}[/bold] {state}: best {pruning.monitor} {pruning.best:.4f}", soft_wrap=True
        )
        if pruning.pruned:
            raise optuna.TrialPruned()
        return pruning.best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=args.startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=args.startup_trials, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=args.trials)

    table = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    table.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in table.columns]
    monitor = str(study.best_trial.user_attrs.get("monitor", "val/acc"))
    table = table.rename(columns={"value": monitor.replace("/", "_")})
    table.to_csv(args.out / "trials.csv", index=False)

    best = study.best_trial
    base = yaml.safe_load(args.config.read_text())
    data_args = _data_overrides(passthrough)
    header = (
        f"# Best of {len(study.trials)} Optuna trials (benchmarks/sweep_local.py, search space {args.sweep.name}):\n"
        f"# trial {best.number}, {monitor} {best.value:.4f} after {args.epochs} epochs of at most "
        f"{args.limit_train_batches} batches.\n# Train it fully: textcls fit --config {args.out / 'best.yaml'}\n"
    )
    config = merge(merge(base, nest(data_args)), nest(_best_values(best, parameters)))
    (args.out / "best.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    console.print(
        f"{len(study.trials)} trials ({pruned} pruned); best {monitor} {best.value:.4f} (trial {best.number}).\n"
        f"Wrote {args.out / 'trials.csv'} and {args.out / 'best.yaml'}",
        soft_wrap=True,
    )


def _best_values(trial: optuna.trial.FrozenTrial, parameters: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, spec in parameters.items():
        value = trial.params[name]
        values[name] = json.loads(value) if sweep_distribution(spec) == "values" else value
    return values


def _data_overrides(passthrough: list[str]) -> dict[str, Any]:
    """--data.* options given to this script, so best.yaml trains on the same data as the search."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(passthrough):
        arg = passthrough[i]
        if arg.startswith("--data."):
            key, sep, value = arg[2:].partition("=")
            if not sep and i + 1 < len(passthrough):
                i, value = i + 1, passthrough[i + 1]
            out[key] = yaml.safe_load(value)
        i += 1
    return out


if __name__ == "__main__":
    main()
