"""Does a dev split carved at random from train share rare names with train more often than the test set does?

IMDB's train and test movies are disjoint, but a random dev split shares movies with the rest of train. Capitalised
word pairs (actors, characters, titles) seen only a few times in train stand in for the movie here: the share of
dev and of test texts holding one tells whether dev rewards a model for remembering the training movies.

    python studies/dev_name_overlap.py ../shared/data/imdb

The splits are the accuracy harness's (benchmarks/accuracy.py: its stratified 10 % dev with a fixed seed).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402  (benchmarks/accuracy.py, a script's module)

NAME = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")


def names(text: str) -> set[str]:
    return set(NAME.findall(text))


def shares(train: list[str], others: dict[str, list[str]], most: int) -> dict[str, float]:
    """Per text set, the share of its texts with a name seen in 2..most training texts."""
    seen = collections.Counter(n for t in train for n in names(t))
    rare = {n for n, c in seen.items() if 2 <= c <= most}
    return {key: sum(bool(names(t) & rare) for t in texts) / len(texts) for key, texts in others.items() if texts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a data set folder with train.csv and test.csv (no dev.csv)")
    p.add_argument("--most", type=int, nargs="+", default=[5, 30], help="'rare': seen in at most this many texts")
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as work:
            data = accuracy.load_dataset(args.folder, 10, Path(work))
            if data.protocol != "holdout":
                p.error(
                    f"{args.folder}: expected train.csv and test.csv, with no dev.csv (the dev split this script "
                    f"looks at is the one the harness carves from train.csv); its layout is '{data.protocol}'"
                )
            split = data.splits[0]
            train, dev, test = (
                [text for _, text in accuracy.read_rows(f)] for f in (split.train, split.dev, split.test)
            )
    except accuracy.HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(train)} train, {len(dev)} dev, {len(test)} test texts")
    for most in args.most:
        found = shares(train, {"dev": dev, "test": test}, most)
        print(
            f"texts with a capitalised word pair seen in 2-{most} training texts: "
            f"dev {100 * found['dev']:.1f} %, test {100 * found['test']:.1f} %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
