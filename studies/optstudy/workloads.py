"""The study's workloads: a model recipe on a data set with a fixed step budget.

Budgets are in optimizer steps, the same for every optimizer, and long enough that the best dev point of the best
optimizer comes before the end (checked in the report). Dev is evaluated `evals` times per run, evenly spaced, so
learning curves and steps-to-target have that resolution. MR uses three of the accuracy harness's ten folds: the
tuning runs use fold 0, and seed i of the final runs uses fold i mod 3 (so the spread covers folds and seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .space import OPTIMIZERS, Optimizer


@dataclass(frozen=True)
class Workload:
    """One workload; WORKLOADS lists them in the order the study runs them (the cheaper MLPs before a TextCNN)."""

    name: str
    data: str  # folder under --data-root
    model: str  # "textcnn", "mlp" (dense, one hidden layer) or "mlp_nb" (linear, NB-weighted, sparse embeddings)
    configs: tuple[str, ...]  # stacked after the experiment config, before the optimizer's
    steps: int
    evals: int = 20
    folds: int = 1  # > 1: cross-validation folds of the data set's all.csv
    multi_label: bool = False
    overrides: tuple[str, ...] = ()
    only: tuple[str, ...] = ()  # a subset of the optimizers, where every one would not fit the study's hours

    @property
    def folder(self) -> str:
        """Where its runs live: the budget is part of the name, so runs of another budget are never mixed in."""
        return f"{self.name}@{self.steps}"

    @property
    def last_eval(self) -> int:
        """The step of the budget's last dev evaluation."""
        return self.steps // self.evals * self.evals

    @property
    def experiment(self) -> str:
        return "configs/textcnn.yaml" if self.model == "textcnn" else "configs/mlp.yaml"

    @property
    def metric(self) -> str:
        return "f1_macro" if self.multi_label else "acc"

    @property
    def optimizers(self) -> list[str]:
        sparse = self.model == "mlp_nb"
        return [name for name, o in OPTIMIZERS.items() if (o.sparse or not sparse) and name in (self.only or [name])]

    def momenta(self, opt: Optimizer) -> tuple[float, ...]:
        """The momentum values to try: none with sparse gradients (SGD's momentum buffer would grow every step)."""
        return (0.0,) if opt.momentum and self.model == "mlp_nb" else opt.momentum

    def fold_of_seed(self, seed: int) -> int:
        return seed % self.folds

    def config_paths(self, root: Path) -> list[Path]:
        return [root / self.experiment, *(root / c for c in self.configs)]


_MULTI_LABEL = ("--model.class_weights=balanced", "--model.threshold_mode=per_label", "--data.label_column=labels")

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("sst2-textcnn", "sst2", "textcnn", ("configs/benchmarks/textcnn_rand.yaml",), steps=560),
        Workload("sst2-mlp", "sst2", "mlp", (), steps=640),
        Workload("mr-mlp", "mr", "mlp", (), steps=800, folds=3),
        Workload("mr-textcnn", "mr", "textcnn", ("configs/benchmarks/textcnn_rand.yaml",), steps=700, folds=3),
        Workload("goemotions-mlp", "goemotions", "mlp", (), steps=5440, multi_label=True, overrides=_MULTI_LABEL),
        Workload("imdb-mlp", "imdb", "mlp", (), steps=1400),
        Workload("sst2-mlp_nb", "sst2", "mlp_nb", ("configs/benchmarks/mlp_nb.yaml",), steps=700),
        # minutes a run (400-token reviews): the article's three, AlgoPerf's baseline and its self-tuning winner
        Workload(
            "imdb-textcnn",
            "imdb",
            "textcnn",
            ("configs/benchmarks/textcnn_imdb.yaml",),
            steps=2400,
            evals=40,
            only=("sgd", "rmsprop", "adam", "nadamw", "schedule_free_adamw"),
        ),
    )
}

# eps and beta2 of the Adam family are tuned on this workload only (the headline one).
ADAM_EXTRAS_WORKLOAD = "sst2-textcnn"

# The frequency test (Kunstner et al. 2024) compares these optimizers' models by word frequency on this workload.
FREQUENCY_WORKLOAD = "sst2-textcnn"
FREQUENCY_OPTIMIZERS = ("sgd", "adam")


def scaled(scale: float) -> dict[str, Workload]:
    """The workloads with `scale` x their step budgets (a smoke run of the study's machinery, never its results)."""
    if scale == 1:
        return dict(WORKLOADS)
    return {n: replace(w, steps=max(w.evals, round(w.steps * scale))) for n, w in WORKLOADS.items()}
