"""The data pipeline's figures: tokenization throughput, cache speed-up, peak memory at scale, bucketing gains.

    python benchmarks/data_pipeline.py                                     # full run (the README figures)
    python benchmarks/data_pipeline.py --token-rows 20000 --cache-rows 50000 --rss-rows 50000,200000 \
        --bucket-steps 10                                                  # quick smoke run (about a minute)

Sections (choose with --sections):
  tokenize  rows/s of a plain-Python tokenizer (lowercase, re.findall(r"\\w+|[^\\w\\s]"), dict lookup) and of
            textcls's pyarrow tokenizer on the same generated 25-word rows, median of 3 rounds each, and the ratio.
  cache     TextDataModule.setup("fit") on a generated CSV: first call (reads, tokenizes, writes the cache) vs
            second call from a fresh DataModule (opens the cache), and the speed-up.
  rss       peak RSS (ru_maxrss of a fresh child process) of setup("fit") plus one full pass over the training
            DataLoader, at each size in --rss-rows, and the ratio largest / smallest. The cache is cold in each child.
  bucket    on ../shared/data/sst2 and ../shared/data/imdb: padding fraction of one epoch of training batches and
            TextCNN training throughput (rows/s over --bucket-steps optimizer steps after warm-up, on and off
            interleaved in 5 rounds), with and without length bucketing.
Generated data lives in a temporary directory that is removed at the end (--keep to keep it).
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS_PER_ROW = 25


def word_list(size: int = 20_000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(size * 2)}
    return [*sorted(words)[:size], ",", ".", "!", "?"]


def generated_texts(rows: int, seed: int, words: pa.Array) -> pa.Array:
    """`rows` texts of WORDS_PER_ROW words drawn Zipf-like from `words` (capitalised first word, some punctuation)."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, size=rows * WORDS_PER_ROW) - 1, len(words) - 1).astype(np.int32)
    flat = words.take(pa.array(ranks))
    offsets = pa.array(np.arange(0, rows * WORDS_PER_ROW + 1, WORDS_PER_ROW, dtype=np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, flat), " ")


def write_csv(path: Path, rows: int, seed: int = 0, chunk: int = 200_000) -> Path:
    words = pa.array(word_list())
    schema = pa.schema([("label", pa.string()), ("text", pa.string())])
    labels = pa.array(["negative", "positive", "neutral"])
    with pacsv.CSVWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            rng = np.random.default_rng([seed, start])
            label = labels.take(pa.array(rng.integers(0, 3, size=n)))
            writer.write_table(pa.table({"label": label, "text": generated_texts(n, seed + start, words)}))
    return path


# ----- tokenize -----


def plain_python_encode(texts: list[str], vocab: dict[str, int], max_length: int) -> list[list[int]]:
    pattern = re.compile(r"\w+|[^\w\s]")
    return [[vocab.get(w, 1) for w in pattern.findall(t.lower())[:max_length]] for t in texts]


def bench_tokenize(rows: int) -> dict[str, float]:
    from textcls.data.tokenizer import WordTokenizer

    texts = generated_texts(rows, 1, pa.array(word_list()))
    tokenizer = WordTokenizer.train(texts)
    vocab = {w: i for i, w in enumerate(tokenizer.vocab)}
    as_list = texts.to_pylist()
    plain, ours = [], []
    with ThreadPoolExecutor() as pool:  # as the DataModule's build runs it
        for _ in range(3):  # interleaved rounds, so a noisy neighbour hurts both alike
            start = time.perf_counter()
            plain_python_encode(as_list, vocab, 256)
            plain.append(rows / (time.perf_counter() - start))
            start = time.perf_counter()
            tokenizer.encode(texts, 256, executor=pool)
            ours.append(rows / (time.perf_counter() - start))
    result = {"plain_rows_s": statistics.median(plain), "pyarrow_rows_s": statistics.median(ours)}
    result["ratio"] = result["pyarrow_rows_s"] / result["plain_rows_s"]
    print(
        f"tokenize {rows:,} rows x {WORDS_PER_ROW} words: plain Python {result['plain_rows_s']:,.0f} rows/s, "
        f"textcls (pyarrow) {result['pyarrow_rows_s']:,.0f} rows/s, ratio {result['ratio']:.2f}x (median of 3)"
    )
    return result


# ----- cache -----


def bench_cache(rows: int, work: Path) -> dict[str, float]:
    from textcls.data import TextDataModule

    path = write_csv(work / f"cache-{rows}.csv", rows)
    cache = work / "cache-bench"
    times = []
    for _ in range(2):
        dm = TextDataModule(train_file=str(path), cache_dir=str(cache))
        start = time.perf_counter()
        dm.setup("fit")
        times.append(time.perf_counter() - start)
    print(
        f"cache {rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB CSV): first setup {times[0]:.2f} s, "
        f"second setup {times[1]:.3f} s, speed-up {times[0] / times[1]:.0f}x"
    )
    return {"first_s": times[0], "second_s": times[1], "speedup": times[0] / times[1]}


# ----- rss -----


def child_rss(path: str, cache: str, batch_size: int) -> None:
    """Runs in a fresh process: setup("fit") then one pass over the training loader; prints peak RSS in MB."""
    from textcls.data import TextDataModule

    start = time.perf_counter()
    dm = TextDataModule(train_file=path, cache_dir=cache, batch_size=batch_size)
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    setup_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = 0
    for batch in dm.train_dataloader():
        rows += len(batch["input_ids"])
    epoch_s = time.perf_counter() - start - setup_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {peak_mb:.1f} {setup_s:.2f} {epoch_s:.2f} {rows} {setup_peak_mb:.1f}")


def bench_rss(sizes: list[int], work: Path, batch_size: int) -> dict[int, float]:
    peaks = {}
    for rows in sizes:
        path = write_csv(work / f"rss-{rows}.csv", rows)
        cache = work / f"rss-cache-{rows}"
        out = subprocess.run(
            [sys.executable, __file__, "--child-rss", str(path), str(cache), str(batch_size)],
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
        peak, setup_s, epoch_s, seen, setup_peak = line.split()[1:]
        peaks[rows] = float(peak)
        print(
            f"rss {rows:,} rows ({path.stat().st_size / 1e6:,.0f} MB CSV): peak RSS {float(peak):,.0f} MB "
            f"(after setup alone {float(setup_peak):,.0f} MB) "
            f"(setup {float(setup_s):.1f} s, one epoch over the training loader {float(epoch_s):.1f} s, "
            f"{int(seen):,} rows)"
        )
        path.unlink()
        shutil.rmtree(cache, ignore_errors=True)
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        print(f"rss ratio {large:,} rows / {small:,} rows: {peaks[large] / peaks[small]:.2f}x")
    return peaks


# ----- bucket -----


def bench_bucket(steps: int, work: Path, rounds: int = 5) -> None:
    """Off and on train alternately, `steps / rounds` steps at a time, so a noisy neighbour slows both alike."""
    import torch

    from textcls.data import TextDataModule
    from textcls.data.batching import padding_fraction
    from textcls.models import TextCNN

    # One intra-op thread: on a shared machine, OpenMP threads spinning against other jobs swamp the comparison.
    torch.set_num_threads(1)
    for name in ("sst2", "imdb"):
        train = SHARED / name / "train.csv"
        if not train.is_file():
            print(f"bucket {name}: {train} not found, skipped")
            continue
        runs = {}
        for bucket in (False, True):
            torch.manual_seed(0)
            dm = TextDataModule(
                train_file=str(train), cache_dir=str(work / "bucket-cache"), bucket=bucket, batch_size=64
            )
            dm.setup("fit")
            loader = dm.train_dataloader()
            fraction = padding_fraction(dm.datasets["train"].lengths, [b["index"].tolist() for b in loader])
            model = TextCNN(vocab_size=dm.vocab_size, num_classes=dm.num_classes, pad_id=dm.pad_id)
            runs[bucket] = {
                "fraction": fraction,
                "loader": loader,
                "batches": iter(()),
                "model": model,
                "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
                "rows": 0,
                "seconds": 0.0,
            }

        def train_steps(run: dict, count: int, timed: bool) -> None:
            done = 0
            while done < count:
                start = time.perf_counter()  # a step's time includes fetching and padding its batch
                batch = next(run["batches"], None)
                if batch is None:
                    run["batches"] = iter(run["loader"])
                    continue
                loss = torch.nn.functional.cross_entropy(run["model"](batch["input_ids"]), batch["labels"])
                run["optimizer"].zero_grad()
                loss.backward()
                run["optimizer"].step()
                if timed:
                    run["seconds"] += time.perf_counter() - start
                    run["rows"] += len(batch["labels"])
                done += 1

        for run in runs.values():
            train_steps(run, 5, timed=False)  # warm-up: allocators and kernels
        for round_ in range(rounds):
            for bucket in (False, True) if round_ % 2 == 0 else (True, False):
                train_steps(runs[bucket], max(steps // rounds, 1), timed=True)
        speed = {bucket: run["rows"] / run["seconds"] for bucket, run in runs.items()}
        for bucket, run in runs.items():
            print(
                f"bucket {name} {'on ' if bucket else 'off'}: padding {run['fraction']:.1%} of batch cells, "
                f"TextCNN training {speed[bucket]:,.0f} rows/s ({steps} steps incl. batch loading, batch 64, "
                "max_length 256, 1 thread)"
            )
        print(f"bucket {name}: throughput gain {speed[True] / speed[False]:.2f}x (on and off interleaved)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="tokenize,cache,rss,bucket")
    parser.add_argument("--token-rows", type=int, default=200_000)
    parser.add_argument("--cache-rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", default="1000000,10000000")
    parser.add_argument("--rss-batch-size", type=int, default=256)
    parser.add_argument("--bucket-steps", type=int, default=60)
    parser.add_argument("--work-dir", default=None, help="where generated files go (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child-rss", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(args.child_rss[0], args.child_rss[1], int(args.child_rss[2]))
        return
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="textcls-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sections = args.sections.split(",")
    try:
        if "tokenize" in sections:
            bench_tokenize(args.token_rows)
        if "cache" in sections:
            bench_cache(args.cache_rows, work)
        if "rss" in sections:
            bench_rss([int(n) for n in args.rss_rows.split(",")], work, args.rss_batch_size)
        if "bucket" in sections:
            bench_bucket(args.bucket_steps, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
