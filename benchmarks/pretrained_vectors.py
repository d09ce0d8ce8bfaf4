"""Reading a large word-vector file into an embedding table: wall time, throughput and peak memory.

    python benchmarks/pretrained_vectors.py                                  # 400k words x 300 dims, text and .gz
    python benchmarks/pretrained_vectors.py --words 50000 --dim 100          # quick run

No real vectors are downloaded: the file is generated (GloVe layout, no header, 6 decimals like GloVe) in a temporary
directory. Each measurement runs in a fresh child process, so its peak RSS (ru_maxrss) is that of the load alone;
"table" is the embedding table's own size (vocabulary x dim x 4 bytes), the floor any loader needs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, words: int, dim: int, compress: bool) -> None:
    rng = np.random.default_rng(0)
    # 2,000 distinct vectors reused: parsing cost is the same, and generating the file stays quick
    pool = [" ".join(f"{x:.6f}" for x in rng.normal(0, 0.4, dim)) for _ in range(2000)]
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) if compress else path.open("w") as out:
        for start in range(0, words, 10_000):
            out.write("".join(f"w{i} {pool[i % 2000]}\n" for i in range(start, min(start + 10_000, words))))


def child(path: str, vocab_size: int, words: int, dim: int) -> None:
    import resource

    import torch

    torch.set_num_threads(1)
    from torch import nn

    from textcls.embeddings import load_pretrained

    # vocabulary: <pad>, <unk>, half of it words in the file (spread over the whole file), half words that are not
    step = max(words // (vocab_size // 2), 1)
    vocab = ["<pad>", "<unk>", *[f"w{i}" for i in range(0, words, step)][: vocab_size // 2]]
    vocab += [f"missing{i}" for i in range(vocab_size - len(vocab))]
    embedding = nn.Embedding(len(vocab), dim, padding_idx=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    coverage = load_pretrained(embedding, path, vocab, lowercase=True, skip_ids=[1])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "found": coverage.found, "rss_before_mb": before / 1024,
                      "rss_peak_mb": peak / 1024}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=400_000, help="lines in the generated vector file")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--vocab", type=int, default=20_000, help="vocabulary size (half of it is in the file)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), int(args.child[3]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="textcls-vectors-"))
    try:
        print(f"{args.words:,} words x {args.dim} dims, vocabulary {args.vocab:,}; one torch thread")
        for compress in (False, True):
            path = tmp / ("vectors.txt.gz" if compress else "vectors.txt")
            write_file(path, args.words, args.dim, compress)
            size_mb = path.stat().st_size / 2**20
            command = [sys.executable, __file__, "--child", str(path), str(args.vocab), str(args.words), str(args.dim)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            table_mb = args.vocab * args.dim * 4 / 2**20
            print(
                f"{path.name:16s} {size_mb:8.1f} MB  {result['seconds']:6.1f} s  "
                f"{args.words / result['seconds'] / 1000:6.0f}k lines/s  {size_mb / result['seconds']:6.1f} MB/s  "
                f"found {result['found']:,}  peak RSS {result['rss_peak_mb']:.0f} MB "
                f"(+{result['rss_peak_mb'] - result['rss_before_mb']:.0f} MB over the process before the load; "
                f"table {table_mb:.0f} MB)"
            )
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
