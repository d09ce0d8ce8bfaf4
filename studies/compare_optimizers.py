"""The optimizer study: is Adam faster and more stable than SGD and RMSprop on text classification?

Eleven optimizers (studies/optstudy/space.py) on the workloads of studies/optstudy/workloads.py (TextCNN and MLPs on
SST-2, MR, IMDB and GoEmotions), each tuned on dev with the same protocol (studies/optstudy/search.py: a learning-rate
grid extended until its best point is interior, then momentum or beta2/eps), then trained with 5+ seeds at the
chosen setting. Every run is `textcls fit` (the CLI in-process in a pool of `--jobs` worker processes) and leaves its
result.json under --runs-root; finished runs are reused, so the study resumes where it stopped (and where it was
published: runs in --out/runs.csv that --runs-root lacks are restored from it first). Then the summary,
the plots and the report page are written from those files (`--report-only` does just that).

    make study                                                  # everything, resumable
    python studies/compare_optimizers.py --workloads sst2-mlp --optimizers adam sgd --jobs 2
    python studies/compare_optimizers.py --report-only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from optstudy.measures import scores_of
from optstudy.restore import restore_published
from optstudy.runner import Job, load_results, run_job, worker_init
from optstudy.search import MAX_POINTS, plan
from optstudy.space import OPTIMIZERS
from optstudy.workloads import WORKLOADS, scaled

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the data sets")
    p.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "optimizer_study", help="the runs' folders")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "optimizer_study", help="summary, raw runs, plots")
    p.add_argument("--page", type=Path, default=ROOT / "docs" / "optimizer-study.md", help="the report page")
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    p.add_argument("--seeds", type=int, default=5, help="seeds at each chosen setting (a multiple of the folds)")
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per run")
    p.add_argument("--hours", type=float, default=math.inf, help="start no run after this many hours")
    p.add_argument("--report-only", action="store_true", help="write the summary and plots from finished runs")
    p.add_argument("--step-time", action="store_true", help="measure step times and state memory (idle machine)")
    p.add_argument("--max-grid", type=int, default=MAX_POINTS, help="most learning rates one search tries")
    p.add_argument("--scale", type=float, default=1.0, help="x every step budget: a smoke run, not the study")
    args = p.parse_args(argv)
    args.defs = scaled(args.scale)
    return args


def needed_jobs(args: argparse.Namespace, results: dict) -> list[Job]:
    scores = scores_of(results)
    jobs = []
    for name in args.workloads:
        workload = args.defs[name]
        for opt in args.optimizers:
            if opt in workload.optimizers:
                p = plan(workload, opt, scores.get(name, {}).get(opt, {}), args.seeds, args.max_grid)
                jobs += [Job(workload, opt, setting, seed) for setting, seed in p.needed]
    return jobs


def run_study(args: argparse.Namespace) -> str | None:
    """Runs what the study still needs; returns why it stopped early (a run that broke), or None."""
    results = load_results(args.runs_root, args.defs)
    print(f"{len(results)} finished runs in {args.runs_root}", flush=True)
    deadline = time.time() + args.hours * 3600
    started = len(results)
    broken: str | None = None
    context = get_context("spawn")  # a fresh interpreter per worker: no state of this process leaks into runs
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=worker_init, initargs=(args.threads, str(args.runs_root / "logs"))
    ) as pool:
        running: dict[Future, Job] = {}
        while True:
            if time.time() < deadline and broken is None:
                busy = {job.key for job in running.values()}
                for job in needed_jobs(args, results):
                    if len(running) >= args.jobs:
                        break
                    if job.key not in busy:
                        running[pool.submit(run_job, job, args.runs_root, args.data_root)] = job
                        busy.add(job.key)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                record = future.result()
                if record["status"] == "failed":  # the runs in flight finish; no new one starts
                    broken = broken or (
                        f"the run {' '.join(map(str, job.key))} broke: {record['error']}\n"
                        f"Its traceback is in {args.runs_root / 'logs'}; fix the cause and run the study again "
                        "(finished runs are reused)."
                    )
                    continue
                results[job.key] = record
                print(
                    f"{time.strftime('%H:%M:%S')} {' '.join(map(str, job.key)):60s} {record['status']:8s} "
                    f"dev {record.get('best_dev', math.nan):.4f} test {record.get('test_at_best_dev', math.nan):.4f} "
                    f"{record['wall_seconds']:.0f} s",
                    flush=True,
                )
    print(f"{len(results) - started} runs this time; {len(needed_jobs(args, results))} still needed", flush=True)
    return broken


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    restored = restore_published(args.out, args.runs_root, args.defs)
    if restored:
        print(f"{restored} published runs restored from {args.out}/runs.csv into {args.runs_root}", flush=True)
    if args.step_time:
        from optstudy.steptime import measure

        chosen = [args.defs[name] for name in args.workloads]
        measure(chosen, args.optimizers, args.runs_root, args.data_root, args.out / "step_time.csv")
        return 0
    if not args.report_only and (broken := run_study(args)):
        print(f"The study stopped: {broken}", file=sys.stderr)
        return 1
    from optstudy.report import write_report

    return write_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
