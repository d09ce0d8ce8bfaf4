"""The tuning protocol, as a pure function of the runs finished so far (so the study resumes from its files).

For each workload and optimizer, on dev with seed 0 (fold 0):
1. the learning rate on the lattice of space.py, from the three points around the usual default, extended one point
   at a time on each side until the best point is interior and both edge points are more than `BRACKET` below it
   (so the sensitivity curve is bracketed too), at most `MAX_POINTS` points;
2. for SGD and RMSprop, momentum at the same effective rate lr / (1 - momentum); for the Adam family on one
   workload, beta2 and eps; when another value wins, step 1 again around its rate (one coordinate round);
3. the chosen setting with the other seeds.
Test results are never read here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from .space import BETA2, EPS, LATTICE, OPTIMIZERS, Setting
from .workloads import ADAM_EXTRAS_WORKLOAD, Workload

BRACKET = 0.01  # one point of accuracy (or macro-F1)
MAX_POINTS = 12
K_BOUNDS = (-24, 6)  # 1e-8 .. 100
DEFAULT = (0.999, 1e-8)  # torch's beta2 and eps, what the lr search used

Scores = Mapping[tuple[str, int], float]  # (setting tag, seed) -> best dev metric; NaN for a failed run


@dataclass
class LrSearch:
    template: Setting
    scores: dict[int, float]  # lattice index -> dev score, seed 0
    best: int
    at_edge: bool  # the best point sits at an end of the grid (the search hit max_points or K_BOUNDS)


@dataclass
class Plan:
    needed: list[tuple[Setting, int]] = field(default_factory=list)  # (setting, seed) runs to start now
    chosen: Setting | None = None  # set when the search is complete
    searches: list[LrSearch] = field(default_factory=list)
    coordinate: dict[str, dict[str, float]] = field(default_factory=dict)  # "momentum" -> {value: score}, ...
    seeds: list[int] = field(default_factory=list)
    failed: bool = False  # every learning rate of the first search failed or diverged


def score(scores: Scores, setting: Setting, seed: int = 0) -> float:
    value = scores.get((setting.tag(), seed), math.nan)
    return -math.inf if math.isnan(value) else value


def lr_search(template: Setting, initial: list[int], scores: Scores, max_points: int) -> LrSearch | list[Setting]:
    """The finished search, or the settings it still needs (all of them startable now)."""
    ks = set(initial) | {k for k in range(*K_BOUNDS) if (replace(template, k=k).tag(), 0) in scores}
    while True:
        missing = [replace(template, k=k) for k in sorted(ks) if (replace(template, k=k).tag(), 0) not in scores]
        if missing:
            return missing
        values = {k: score(scores, replace(template, k=k)) for k in sorted(ks)}
        top = [k for k in values if values[k] == max(values.values())]
        best = top[(len(top) - 1) // 2]  # ties: the middle of the plateau, the choice least sensitive to the rate
        lo, hi = min(ks), max(ks)
        grow = []
        if len(ks) < max_points:
            if math.isinf(values[best]):
                return LrSearch(template, values, best, True)  # nothing trains here: widening would not help
            if lo > K_BOUNDS[0] and (best == lo or values[lo] > values[best] - BRACKET):
                grow.append(lo - 1)
            if hi < K_BOUNDS[1] - 1 and (best == hi or values[hi] > values[best] - BRACKET):
                grow.append(hi + 1)
        if not grow:
            return LrSearch(template, values, best, best in (lo, hi))
        ks.update(grow)


def plan(workload: Workload, optimizer: str, scores: Scores, n_seeds: int, max_points: int = MAX_POINTS) -> Plan:
    opt = OPTIMIZERS[optimizer]
    out = Plan()
    momenta = workload.momenta(opt)
    chosen = Setting(opt.center, momentum=momenta[0] if momenta else None)
    initial = [opt.center - 1, opt.center, opt.center + 1]
    result = lr_search(chosen, initial, scores, max_points)
    if isinstance(result, list):
        out.needed = [(s, 0) for s in result]
        return out
    out.searches.append(result)
    if all(math.isinf(v) for v in result.scores.values()):
        out.failed = True  # no rate trains: nothing to tune further or to repeat with seeds
        return out
    chosen = replace(chosen, k=result.best)

    coordinates: list[tuple[str, Callable[[Setting], list[Setting]]]] = []
    if len(momenta) > 1:
        coordinates.append(("momentum", lambda c: [replace(c, momentum=m, k=c.k + _shift(c, m)) for m in momenta]))
    if opt.adam_family and workload.name == ADAM_EXTRAS_WORKLOAD:
        grid = [(b, e) for b in BETA2 for e in EPS if (b, e) != DEFAULT]
        coordinates.append(("beta2, eps", lambda c: [c] + [replace(c, beta2=b, eps=e) for b, e in grid]))
    for name, make_trials in coordinates:
        trials = make_trials(chosen)
        missing = [(s, 0) for s in trials if (s.tag(), 0) not in scores]
        if missing:
            out.needed = missing
            return out
        out.coordinate[name] = {_describe(s): score(scores, s) for s in trials}
        best = max(trials, key=lambda s: score(scores, s))  # ties: the first, the value the lr search used
        if best != chosen:
            result = lr_search(best, [best.k - 1, best.k, best.k + 1], scores, max_points)
            if isinstance(result, list):
                out.needed = [(s, 0) for s in result]
                return out
            out.searches.append(result)
            chosen = replace(best, k=result.best)

    seeds = list(range(_seed_count(workload, n_seeds)))
    out.needed = [(chosen, s) for s in seeds if (chosen.tag(), s) not in scores]
    if not out.needed:
        out.chosen, out.seeds = chosen, seeds
    return out


def _shift(setting: Setting, momentum: float) -> int:
    """Lattice steps that keep the effective step size lr / (1 - momentum) when momentum changes: a momentum value
    tried at the old rate would lose to the old value for the wrong reason (a step size 10x off for 0.9 -> 0)."""
    old = setting.momentum or 0.0
    return round(LATTICE * math.log10((1 - momentum) / (1 - old)))


def _seed_count(workload: Workload, n_seeds: int) -> int:
    """At least n_seeds, and a whole number of passes over the folds (each fold as often as the others)."""
    return math.ceil(n_seeds / workload.folds) * workload.folds


def _describe(setting: Setting) -> str:
    parts = []
    if setting.momentum is not None:
        parts.append(f"momentum {setting.momentum:g}")
    if setting.beta2 is not None or setting.eps is not None:
        parts.append(f"beta2 {setting.beta2 or 0.999:g} eps {setting.eps or 1e-8:g}")
    return ", ".join(parts) or "defaults"
