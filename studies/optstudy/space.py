"""The optimizers the study compares and the hyper-parameters it tunes for each.

Learning rates live on a log lattice with three points per decade (lr = 10^(k/3)), so a grid is a range of integers
k, extended without rounding drift and never coarser than the issue's factor of 10^(1/3).
"""

from __future__ import annotations

from dataclasses import dataclass

LATTICE = 3  # points per decade


def lr_of(k: int) -> float:
    return float(f"{10 ** (k / LATTICE):.3g}")


@dataclass(frozen=True)
class Optimizer:
    name: str  # the study's key, also the configs/optimizers/<name>.yaml it stacks
    label: str  # as the report prints it
    center: int  # lattice index of the usual default lr: the first grid is centred on it
    momentum: tuple[float, ...] = ()  # momentum values tried at the chosen lr (the first is the lr search's value)
    adam_family: bool = False  # eps and beta2 are tuned on the study's `adam_extras` workload
    schedule_free: bool = False  # no schedule: its own warmup over the same share of the budget
    sparse: bool = False  # trains sparse embedding gradients (the NB-weighted MLP)

    @property
    def config(self) -> str:
        return f"configs/optimizers/{self.name}.yaml"


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("sgd", "SGD (momentum)", -3, momentum=(0.9, 0.0, 0.5, 0.95), sparse=True),
        Optimizer("sgd_nesterov", "SGD (Nesterov)", -3, momentum=(0.9, 0.5, 0.95)),
        Optimizer("rmsprop", "RMSprop", -9, momentum=(0.0, 0.5, 0.9)),
        Optimizer("adagrad", "Adagrad", -6, sparse=True),
        Optimizer("adam", "Adam", -9, adam_family=True),
        Optimizer("adamw", "AdamW", -9, adam_family=True),
        Optimizer("nadamw", "NAdamW", -9, adam_family=True),
        Optimizer("radamw", "RAdamW", -9, adam_family=True),
        Optimizer("adafactor", "Adafactor", -6),
        Optimizer("schedule_free_adamw", "Schedule-Free AdamW", -8, adam_family=True, schedule_free=True),
        Optimizer("lion", "Lion", -12),
    )
}

# Adam-family extras (Choi et al. 2019: they change the ranking), tried at the chosen lr on one workload.
BETA2 = (0.999, 0.99)
EPS = (1e-8, 1e-6, 1e-4)


@dataclass(frozen=True)
class Setting:
    """One point of an optimizer's search space. `momentum`, `beta2`, `eps` None: the config's value."""

    k: int
    momentum: float | None = None
    beta2: float | None = None
    eps: float | None = None

    @property
    def lr(self) -> float:
        return lr_of(self.k)

    def _given(self) -> list[tuple[str, str, float]]:
        """(tag prefix, CLI override template, value) of each hyper-parameter set beyond the rate."""
        fields = (
            ("m", "--model.optimizer.momentum={:g}", self.momentum),
            ("b", "--model.optimizer.betas=[0.9, {:g}]", self.beta2),
            ("e", "--model.optimizer.eps={:g}", self.eps),
        )
        return [(prefix, template, value) for prefix, template, value in fields if value is not None]

    def tag(self) -> str:
        return "_".join([f"k{self.k:+d}", *(f"{prefix}{value:g}" for prefix, _, value in self._given())])

    def overrides(self) -> list[str]:
        return [f"--model.optimizer.lr={self.lr:g}", *(template.format(value) for _, template, value in self._given())]
