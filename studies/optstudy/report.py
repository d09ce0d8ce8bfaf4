"""The study's outputs, from the finished runs: summary.csv, runs.csv, curves.csv.gz, the figures, the grid-edge
and budget checks and the report page (docs/optimizer-study.md). Hand-written findings come from
docs/optimizer_study/findings.txt: Markdown that is part of the page, not a page of its own.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from pathlib import Path
from typing import Any

from . import frequency, recipes, steptime
from .measures import LOOSE_FRACTION, TARGET_FRACTION, Entry, entries, short_budgets, summary_row, target_of
from .plots import overview, workload_figure
from .restore import PER_LABEL_FIELDS, setting_of
from .runner import ROOT, Job, load_results
from .search import BRACKET
from .space import BETA2, EPS, LATTICE, OPTIMIZERS
from .workloads import ADAM_EXTRAS_WORKLOAD

RUN_FIELDS = [
    "workload", "optimizer", "setting", "lr", "momentum", "beta2", "eps", "seed", "fold", "budget", "role", "status",
    "best_dev", "best_step", "final_dev", "test_at_best_dev", "steps", "loss_spike", "final_train_loss",
    "train_seconds", "wall_seconds", "error",
]  # fmt: skip


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}" if abs(value) < 1 else f"{value:.4f}"  # lr 0.00215
    return "" if value is None else value


def write_report(args: Any) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(args.runs_root, args.defs)
    step_ms = steptime.read(out / "step_time.csv")
    table: list[dict[str, Any]] = []
    by_workload: dict[str, list[Entry]] = {}
    for name, workload in args.defs.items():
        ran = [o for o in OPTIMIZERS if any(k[0] == name and k[1] == o for k in results)]
        found = entries(workload, ran, results, args.seeds, args.max_grid)
        if not found:
            continue
        by_workload[name] = found
        target = target_of(found)
        for e in found:
            row = summary_row(e, target, step_ms)
            row["tuning_runs"] = sum(1 for k in results if k[0] == name and k[1] == e.optimizer and k[3] == 0)
            table.append(row)
        workload_figure(found, target, step_ms, out / f"{name}.png")
    chosen = {(r["workload"], r["optimizer"], r["setting"], r["seed"]) for r in _chosen_runs(by_workload)}
    _write_runs(out, results, chosen)
    _write_per_label(out, results, args.runs_root, args.defs)
    _write_csv(out / "summary.csv", table)
    overview(table, list(by_workload), out / "overview.png")
    edges = [r for r in table if r["complete"] and r["chosen_at_grid_edge"] is True]
    for r in edges:
        print(
            f"CHECK FAILED: {r['workload']} {r['optimizer']}: chosen lr {r['chosen_lr']} at the edge of {r['lr_grid']}"
        )
    short = short_budgets(table, args.defs)
    for r in short:
        print(f"CHECK FAILED: {r['workload']}: the best optimizer, {r['optimizer']}, is best at the end of the budget")
    robust = recipes.robust_rates(by_workload)
    (out / "robust.csv").unlink(missing_ok=True)
    if robust:
        _write_csv(out / "robust.csv", robust)
    freq = frequency.analyse(results, args.defs, args.runs_root, args.data_root, out, args.seeds, args.max_grid)
    extra = [text for text in (freq, recipes.section(robust)) if text]
    page = _page(table, args.defs, (edges, short), extra, out, by_workload, args.max_grid)
    args.page.write_text(page)
    complete = sum(r["complete"] for r in table)
    print(f"wrote {args.page}, {out}/summary.csv ({complete} of {len(table)} complete), runs.csv, figures")
    return 1 if edges or short else 0


def _chosen_runs(by_workload: dict[str, list[Entry]]) -> list[dict[str, Any]]:
    return [r for found in by_workload.values() for e in found for r in e.seeds]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]) if rows else ["workload"])
        writer.writeheader()
        writer.writerows({k: _fmt(v) for k, v in row.items()} for row in rows)


def _write_runs(out: Path, results: dict, chosen: set) -> None:
    rows, curves = [], []
    for key in sorted(results, key=lambda k: tuple(map(str, k))):
        r = results[key]
        role = "seed" if key in chosen and key[3] > 0 else "chosen" if key in chosen else "tuning"
        rows.append({f: _fmt(r.get(f)) for f in RUN_FIELDS} | {"role": role})
        for step, value, seconds in r.get("dev_curve", []):
            curves.append([*key, "dev", step, f"{value:.5f}", f"{seconds:.3f}"])
        for i, value in enumerate(r.get("loss_curve", [])):
            curves.append([*key, "train_loss_10", (i + 1) * 10, f"{value:.5f}", ""])
    with (out / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, RUN_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    header = ["workload", "optimizer", "setting", "seed", "kind", "step", "value", "train_seconds"]
    _write_gzip_csv(out / "curves.csv.gz", header, curves)


def _write_gzip_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    # mtime 0: the same runs give the same bytes, so rewriting the page leaves git quiet
    binary = gzip.GzipFile(path, "wb", compresslevel=9, mtime=0)
    with binary, io.TextIOWrapper(binary, encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_per_label(out: Path, results: dict, runs_root: Path, defs: dict) -> None:
    """per_label.csv.gz: the per-label test reports of the multi-label runs, which the class-frequency test reads,
    so a fresh clone restores those runs too instead of training them again."""
    rows = []
    for key in sorted(results, key=lambda k: tuple(map(str, k))):
        workload, optimizer, tag, seed = key
        report = Job(defs[workload], optimizer, setting_of(tag), seed).folder(runs_root) / "test_per_label.csv"
        if report.is_file():
            with report.open(newline="") as handle:
                rows += [[*key, *r] for r in list(csv.reader(handle))[1:]]
    _write_gzip_csv(out / "per_label.csv.gz", ["workload", "optimizer", "setting", "seed", *PER_LABEL_FIELDS], rows)


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _pct(value: float, ci: float = math.nan) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{100 * value:.2f}" + (f" ± {100 * ci:.2f}" if math.isfinite(ci) else "")


def _loose(row: dict[str, Any]) -> str:
    return f"{_num(row['steps_to_loose_target_median'], 0)} ({row['seeds_reaching_loose_target']})"


def _speed(adam: dict[str, Any], rival: dict[str, Any], name: str, rival_name: str, key: str, what: str) -> str | None:
    a, b = adam[key], rival[key]
    if math.isfinite(a) and math.isfinite(b):
        faster = "faster" if a < 0.8 * b else "slower" if a > 1.25 * b else "about as fast"
        return f"{faster} to {what} ({a:.0f} against {b:.0f} median steps)"
    if math.isfinite(a):
        return f"faster: it reaches {what} ({a:.0f} median steps), {rival_name} never does"
    if math.isfinite(b):
        return f"not faster: {name} never reaches {what}, {rival_name} does ({b:.0f} median steps)"
    return None


def _verdicts(rows: list[dict[str, Any]], adam_trains: bool = True) -> list[str]:
    """The article's question for one workload, in plain words, from the summary rows. Where Adam cannot train the
    workload (sparse gradients), Adagrad, the adaptive optimizer that can, answers for it."""
    by = {r["optimizer"]: r for r in rows if r["complete"]}
    name = "Adam" if adam_trains else "Adagrad"
    adam = by.get(name)
    if adam is None:
        return [f"{name}'s runs are not finished yet."]
    out = [] if adam_trains else ["Adam cannot train this workload's sparse gradients: Adagrad stands in for it."]
    for rival in ("SGD (momentum)", "SGD (Nesterov)", "RMSprop"):
        r = by.get(rival)
        if r is None:
            continue
        gap = adam["test_mean"] - r["test_mean"]
        noise = math.hypot(adam["test_ci95"], r["test_ci95"])
        better = "higher" if gap > noise else "lower" if gap < -noise else "no different (within the noise)"
        speed = _speed(adam, r, name, rival, "steps_to_target_median", "the target")
        if speed is None:  # neither reaches the target: the looser one still tells which is faster
            loose = f"the looser {100 * LOOSE_FRACTION:.0f} % target"
            speed = _speed(adam, r, name, rival, "steps_to_loose_target_median", loose)
            speed = f"{speed}; neither reaches the target" if speed else "not faster: neither reaches either target"
        stable = (
            "more"
            if adam["test_std"] < 0.8 * r["test_std"]
            else "less"
            if adam["test_std"] > 1.25 * r["test_std"]
            else "as"
        )
        out.append(
            f"Against {rival}: {name}'s test {adam['metric']} is {better} ({_pct(adam['test_mean'])} against "
            f"{_pct(r['test_mean'])}, gap {100 * gap:+.2f} points); it is {speed}; it is {stable} stable across seeds "
            f"(test std {100 * adam['test_std']:.2f} against {100 * r['test_std']:.2f}; reaching the target: "
            f"{adam['seeds_reaching_target']} against {r['seeds_reaching_target']})."
        )
    best = max(by.values(), key=lambda r: r["test_mean"])
    out.append(f"Best test {adam['metric']} here: {best['optimizer']} ({_pct(best['test_mean'], best['test_ci95'])}).")
    return out


def _page(
    table: list[dict[str, Any]],
    defs: dict,
    checks: tuple[list, list],
    extra: list[str],
    out: Path,
    by_workload: dict,
    max_grid: int,
) -> str:
    rel = out.relative_to(ROOT / "docs") if out.is_relative_to(ROOT / "docs") else out
    findings = out / "findings.txt"
    lines = [
        "# The optimizer study",
        "",
        "Does Adam train text classifiers faster and with more stable learning curves than SGD and RMSprop? Eleven "
        "optimizers, each tuned with the same protocol and budget on each workload, then trained with five or more "
        "seeds. This page, its figures and its tables are written by the study "
        "(`make study`; `make study STUDY_ARGS=--report-only` rewrites them from the finished runs). A fresh clone "
        "starts from the published runs (`runs.csv` below), so `make study` runs only what is still missing.",
        "",
    ]
    lines += [
        "```bash",
        "make study                               # runs what is not run yet (hours, resumable), then this page",
        "make study STUDY_ARGS=--report-only      # this page, the tables and the figures from the finished runs",
        "make study STUDY_ARGS=--step-time        # step times and state memory (on an otherwise idle machine)",
        "```",
        "",
    ]
    if findings.is_file():
        lines += [findings.read_text().strip(), ""]
    lines += [
        "## Protocol",
        "",
        f"- **Workloads** ({len(defs)}): "
        + "; ".join(
            f"`{w.name}` ({w.steps} steps, dev every {w.steps // w.evals}"
            + (f"; {', '.join(OPTIMIZERS[o].label for o in w.only)} only" if w.only else "")
            + ")"
            for w in defs.values()
        )
        + ". Data splits are the accuracy harness's (MR: folds 0-2 of its ten; IMDB: its dev carved from train). "
        "Recipes: `configs/textcnn.yaml` + `configs/benchmarks/textcnn_rand.yaml` (IMDB: `textcnn_imdb.yaml`), "
        "`configs/mlp.yaml` (dense: 128-d mean-pooled embeddings, one 256-unit hidden layer), the NB-weighted "
        "linear `configs/benchmarks/mlp_nb.yaml` (sparse embedding gradients: only SGD and Adagrad train them).",
        "- **Optimizers**: " + ", ".join(f"{o.label} (`{o.config}`)" for o in OPTIMIZERS.values()) + ".",
        "- **Schedule**: linear warmup over 10 % of the steps, then cosine decay to 0, for all; Schedule-Free AdamW "
        "has no schedule and its own warmup over the same 10 %. Gradient clipping and weight decay as in the configs.",
        f"- **Tuning** on dev, seed 0 (MR fold 0): the learning rate on a log grid of {LATTICE} points per decade, "
        "starting from the three points around the usual default and extended until the best point is interior and "
        f"both ends are at least {100 * BRACKET:.0f} point below it (at most {max_grid} points); then momentum "
        "for SGD and RMSprop (each value at the rate that keeps lr / (1 - momentum)) and, on "
        f"`{ADAM_EXTRAS_WORKLOAD}`, beta2 in {list(BETA2)} x eps in {list(EPS)} for "
        "the Adam family, with the learning-rate search run again around the winner when it changes. Test is never "
        "read for a choice.",
        "- **Seeds**: the chosen setting with seeds 0-4 (MR: 0-5, seed i on fold i mod 3). Means with 95 % "
        "confidence intervals (Student's t).",
        f"- **Target** per workload: {100 * TARGET_FRACTION:.0f} % of the best seed-mean dev metric any optimizer "
        "reaches. Steps to target: the first dev evaluation at or above it (median over the seeds that reach it). "
        f'"Steps to {100 * LOOSE_FRACTION:.0f} %" is the same for a looser target, {100 * LOOSE_FRACTION:.0f} % of '
        "that best, with the seeds reaching it in brackets: it compares the speed of optimizers that miss the first "
        "target. Seconds: steps x the step time measured interleaved "
        "(`step_time.csv`, 1 thread), never the wall time of runs that shared the machine.",
        "- **Sensitivity**: the width, in decades, of the learning-rate range within 1 point of the best.",
        "",
    ]
    at_edge, short = checks
    if at_edge:
        lines += ["**Grid check failed** for: " + ", ".join(f"{r['workload']} {r['optimizer']}" for r in at_edge), ""]
    else:
        lines += ["**Grid check:** no chosen learning rate sits at an edge of its grid.", ""]
    if short:
        lines += [
            "**Budget check failed** for: "
            + ", ".join(f"{r['workload']} ({r['optimizer']}, best at the last evaluation)" for r in short)
            + ". Each workload's answer above says what a longer budget did there.",
            "",
        ]
    else:
        lines += [
            "**Budget check:** on every finished workload the best optimizer's median best dev point comes before "
            "the end of the budget.",
            "",
        ]
    lines += [f"![overview]({rel}/overview.png)", ""]
    for name in by_workload:
        rows = [r for r in table if r["workload"] == name]
        complete, planned = sum(r["complete"] for r in rows), len(defs[name].optimizers)
        lines += [f"## {name}", ""]
        if complete < planned:
            lines += [f"*{complete} of {planned} optimizers finished; the rest are still running or to come.*", ""]
        lines += [f"- {v}" for v in _verdicts(rows, "adam" in defs[name].optimizers)] + [""]
        lines += [
            "| optimizer | lr grid | chosen | seeds | dev | test (95 % CI) | target reached | steps to target "
            f"| s to target | steps to {100 * LOOSE_FRACTION:.0f} % | best step | loss spike | lr width (decades) "
            "| ms/step (optimizer; kernel) | state B/param |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            options = [f"m {r['chosen_momentum']:g}" if r["chosen_momentum"] is not None else ""]
            if r["chosen_beta2"] is not None:
                options.append(f"b2 {r['chosen_beta2']:g} eps {r['chosen_eps']:g}")
            lines.append(
                f"| {r['optimizer']} | {r['lr_grid']} | {r['chosen_lr']} {' '.join(x for x in options if x)} "
                f"| {r['seeds']} | {_pct(r['best_dev_mean'], r['best_dev_ci95'])} "
                f"| {_pct(r['test_mean'], r['test_ci95'])} | {r['seeds_reaching_target']} "
                f"| {_num(r['steps_to_target_median'], 0)} | {_num(r['seconds_to_target_median'], 1)} "
                f"| {_loose(r)} | {_num(r['best_step_median'], 0)} | {_num(r['loss_spike_max'], 3)} "
                f"| {_num(r['lr_width_decades'], 2)} "
                f"| {_num(r['step_ms'], 1)} ({_num(r['optimizer_step_ms'], 1)}; {r['kernel'] or '-'}) "
                f"| {_num(r['state_bytes_per_param'], 2)} |"
            )
        lines += ["", f"![{name}]({rel}/{name}.png)", ""]
    for text in extra:
        lines += [text, ""]
    lines += [
        "## Files",
        "",
        f"[`summary.csv`]({rel}/summary.csv) (one row per workload and optimizer), [`runs.csv`]({rel}/runs.csv) "
        f"(every run), [`curves.csv.gz`]({rel}/curves.csv.gz) (dev and training-loss curves of every run), "
        f"[`per_label.csv.gz`]({rel}/per_label.csv.gz) (the multi-label runs' per-label test scores)"
        + (f", [`step_time.csv`]({rel}/step_time.csv)" if (out / "step_time.csv").is_file() else "")
        + (f", [`frequency.csv`]({rel}/frequency.csv)" if (out / "frequency.csv").is_file() else "")
        + (f", [`robust.csv`]({rel}/robust.csv)" if (out / "robust.csv").is_file() else "")
        + ". Code: `studies/compare_optimizers.py` and `studies/optstudy/`.",
        "",
    ]
    return "\n".join(lines)
