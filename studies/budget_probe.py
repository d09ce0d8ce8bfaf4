"""Is a workload's step budget long enough? One run of a setting at another budget (dev evaluated at the study's
interval), printing where the best dev point lands: the study's budget check asks that it is not the last one.

    python studies/budget_probe.py --workload imdb-textcnn --optimizer rmsprop --setting k-7_m0 --steps 1200

Runs go under --runs-root (runs/budget_probe), apart from the study's, as `<workload>@<steps>/...` like its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from optstudy.restore import setting_of
from optstudy.runner import Job, run_job, worker_init
from optstudy.space import OPTIMIZERS
from optstudy.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", required=True, choices=list(WORKLOADS))
    p.add_argument("--optimizer", required=True, choices=list(OPTIMIZERS))
    p.add_argument("--setting", required=True, help="a setting tag of the study's runs.csv, e.g. k-7_m0")
    p.add_argument("--steps", type=int, required=True, help="the budget to try")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "budget_probe")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = p.parse_args(argv)
    study = WORKLOADS[args.workload]
    interval = study.steps // study.evals
    if args.steps < interval:
        p.error(f"--steps must be at least the study's evaluation interval of {args.workload}, {interval}")
    try:
        setting = setting_of(args.setting)
    except (ValueError, IndexError):
        setting = None
    if setting is None or setting.tag() != args.setting:  # as runs.csv spells it: k-7_m0, k+1_m0.9, k-9_b0.99_e1e-06
        p.error(f"--setting {args.setting!r} is not a setting tag: k<lattice index>[_m<momentum>][_b<beta2>][_e<eps>]")
    args.job = Job(replace(study, steps=args.steps, evals=args.steps // interval), args.optimizer, setting, args.seed)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = os.dup(1), os.dup(2)
    worker_init(args.threads, str(args.runs_root / "logs"))  # the CLI's output goes to a log, as in the study
    try:
        record = run_job(args.job, args.runs_root, args.data_root)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(console[0], 1)
        os.dup2(console[1], 2)
    print(f"the run: {args.job.folder(args.runs_root)}; its output: {args.runs_root / 'logs'}/worker-{os.getpid()}.log")
    if record["status"] != "ok":
        print(f"the run failed: {record['error']}", file=sys.stderr)
        return 1
    curve = [(step, round(value, 4)) for step, value, _ in record["dev_curve"]]
    print(json.dumps({"dev_by_step": curve}))
    last = curve[-1][0]
    where = "the last evaluation" if record["best_step"] == last else f"before the last evaluation ({last})"
    print(
        f"best dev {record['best_dev']:.4f} at step {record['best_step']}, {where}; "
        f"test at best dev {record['test_at_best_dev']:.4f}; {record['wall_seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
