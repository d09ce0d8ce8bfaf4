"""Fit time of the textcls MLP against fastText on the same split, alternating, as medians and a ratio.

The accuracy harness (benchmarks/accuracy.py) records one fit time per run, each measured while other runs share the
machine. This script times the two side by side instead: rounds alternate a `textcls fit` of the MLP recipe (in its
own subprocess, one torch thread, timed from reading the data to the end of training exactly as the harness does)
and fastText's `train_supervised` at fixed settings (2 threads), the order flipping every round.

    .venv/bin/python benchmarks/mlp_vs_fasttext.py ../shared/data/sst2 --rounds 5 --epoch 10 --lr 0.25

--epoch/--lr are fastText's settings; take the ones the harness chose on dev (the `params` column of
docs/results/<dataset>/fasttext_bigram.csv). Arguments after `--` go to every `textcls fit`, e.g.
`-- --trainer.max_epochs 1` for the MLP that first matches fastText's accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # the harness: splits, the textcls worker, fastText's input files

ROOT = Path(__file__).resolve().parents[1]
MLP_RECIPE = ROOT / "configs/benchmarks/mlp_nb.yaml"  # stacked on configs/mlp.yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset_dir", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epoch", type=int, default=10, help="fastText epochs")
    p.add_argument("--lr", type=float, default=0.25, help="fastText learning rate")
    p.add_argument("--ngrams", type=int, default=2, help="fastText wordNgrams")
    p.add_argument("--threads", type=int, default=2, help="fastText threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mlp-recipe", type=Path, default=MLP_RECIPE, help="MLP recipe stacked on configs/mlp.yaml")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, overrides = p.parse_args(argv[:cut]), argv[cut + 1 :]

    import fasttext

    work = Path(tempfile.mkdtemp(prefix="mlp-vs-fasttext-"))
    split = accuracy.load_dataset(args.dataset_dir.resolve(), 10, work).splits[0]
    ft_train, _ = accuracy.fasttext_file(split.train, work)
    times: dict[str, list[float]] = {"textcls MLP": [], "fastText": []}
    accs: dict[str, list[float]] = {"textcls MLP": [], "fastText": []}
    texts, gold = accuracy.fasttext_eval_rows(split.test)

    def run_mlp(r: int) -> None:
        run_root = work / f"mlp-{r}"
        configs = [ROOT / "configs/mlp.yaml", args.mlp_recipe.resolve()]
        cli = accuracy.textcls_args(configs, split, args.seed, run_root, overrides)
        measured = accuracy.run_worker(cli, run_root, 1, work / f"mlp-{r}.log")
        times["textcls MLP"].append(measured["fit_seconds"])
        accs["textcls MLP"].append(measured["test_acc"])

    def run_fasttext(r: int) -> None:
        start = time.perf_counter()
        model = fasttext.train_supervised(
            input=str(ft_train), epoch=args.epoch, lr=args.lr, wordNgrams=args.ngrams, thread=args.threads,
            seed=args.seed, verbose=0,
        )  # fmt: skip
        times["fastText"].append(time.perf_counter() - start)
        accs["fastText"].append(accuracy._accuracy_f1(gold, accuracy.fasttext_predict(model, texts))[0])

    for r in range(args.rounds):
        order = (run_mlp, run_fasttext) if r % 2 == 0 else (run_fasttext, run_mlp)
        for run in order:
            run(r)
        print(f"round {r}: MLP {times['textcls MLP'][-1]:.2f} s, fastText {times['fastText'][-1]:.2f} s", flush=True)

    mlp, ft = statistics.median(times["textcls MLP"]), statistics.median(times["fastText"])
    for name in times:
        print(
            f"{name:12s} fit median {statistics.median(times[name]):6.2f} s (min {min(times[name]):.2f}, max "
            f"{max(times[name]):.2f}); test acc {100 * statistics.fmean(accs[name]):.2f} %"
        )
    print(f"ratio MLP / fastText (medians): {mlp / ft:.2f}x")


if __name__ == "__main__":
    main()
