"""Train/serve parity of the tokenizer on the benchmark sets, and the throughput of each tokenizer path.

    python benchmarks/tokenizer_parity.py                 # parity on MR, SST-2, IMDB test texts + throughput
    python benchmarks/tokenizer_parity.py --sections parity --sets imdb

parity      per set: the vocabulary is trained on the train split (MR: all.csv), written as `textcls export` writes
            tokenizer.json and read as `textcls serve --backend onnx` reads it; prints the texts whose ids differ
            between textcls (`encode`, the batch path, and `encode_texts` in calls of 1 text, the prediction path)
            and `tokenizers`, as mismatches / total, with the first differing tokens of a few of them.
throughput  texts/s of each path on IMDB test texts, the paths interleaved in --rounds rounds: pyarrow `encode` in
            the calling thread and with a 2-thread pool, `tokenizers` `encode_batch`; and calls/s of one short text
            (ASCII and not) through `encode_texts` (small calls: `tokenizers`) and through pyarrow `encode`.
Reads ../shared/data (see its README); writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import tokenizers

from textcls.data.tokenizer import WordTokenizer
from textcls.export import serving_tokenizer_json
from textcls.serve.backends import _read_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "mr": ("mr/all.csv", "mr/all.csv"),
    "sst2": ("sst2/train.csv", "sst2/test.csv"),
    "imdb": ("imdb/train.csv", "imdb/test.csv"),
}
MAX_LENGTH = 100_000  # no truncation: compare whole texts


def _texts(data: Path, name: str) -> pa.Array:
    return pacsv.read_csv(data / name)["text"].combine_chunks()


def served_tokenizer(tokenizer: WordTokenizer, max_length: int):
    """The tokenizer exactly as the ONNX backend of `textcls serve` loads an export directory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(serving_tokenizer_json(tokenizer, max_length), encoding="utf-8")
        return _read_tokenizer(tokenizers, path)[0]


def _describe(tokenizer: WordTokenizer, ours: list[int], theirs: list[int]) -> str:
    a, b = [tokenizer.vocab[i] for i in ours], [tokenizer.vocab[i] for i in theirs]
    at = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    odd = {c for c in "".join(a[at : at + 2] + b[at : at + 2]) if not c.isascii() or not c.isprintable()}
    names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, unicodedata.category(c))}" for c in sorted(odd))
    return f"textcls {a[at : at + 3]} / tokenizers {b[at : at + 3]}  [{names}]"


def parity(data: Path, sets: list[str], show: int) -> int:
    bad_total = 0
    for name in sets:
        train_file, test_file = SETS[name]
        tokenizer = WordTokenizer.train(_texts(data, train_file), lowercase=True)
        test = _texts(data, test_file)
        served = served_tokenizer(tokenizer, MAX_LENGTH)
        texts = test.to_pylist()
        theirs = [e.ids for e in served.encode_batch(texts)]
        batch = tokenizer.encode(test, MAX_LENGTH).to_pylist()
        single = [tokenizer.encode_texts([t], MAX_LENGTH)[0] for t in texts]
        bad = [i for i, want in enumerate(theirs) if batch[i] != want or single[i] != want]
        bad_total += len(bad)
        print(f"{name}: {len(bad)} / {len(texts)} texts get other ids than the exported tokenizer.json")
        for i in bad[:show]:
            ours = batch[i] if batch[i] != theirs[i] else single[i]
            print(f"  row {i}: {_describe(tokenizer, ours, theirs[i])}")
    return bad_total


def throughput(data: Path, rounds: int) -> None:
    test = _texts(data, SETS["imdb"][1])
    tokenizer = WordTokenizer.train(_texts(data, SETS["imdb"][0]), max_vocab_size=50_000)
    served = served_tokenizer(tokenizer, 256)
    texts = test.to_pylist()
    short_ascii, short_other = ["a great film, really!"], ["a great film, réally!"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        batch = {
            "pyarrow encode, calling thread": lambda: tokenizer.encode(test, 256),
            "pyarrow encode, 2-thread pool": lambda: tokenizer.encode(test, 256, executor=pool),
            "tokenizers encode_batch": lambda: served.encode_batch(texts),
        }
        single = {
            "encode_texts, 1 ASCII text (tokenizers)": lambda: tokenizer.encode_texts(short_ascii, 256),
            "encode_texts, 1 other text (tokenizers)": lambda: tokenizer.encode_texts(short_other, 256),
            "pyarrow encode, 1 ASCII text": lambda: tokenizer.encode(pa.array(short_ascii), 256),
            "pyarrow encode, 1 other text": lambda: tokenizer.encode(pa.array(short_other), 256),
        }
        rates: dict[str, list[float]] = {k: [] for k in [*batch, *single]}
        for _ in range(rounds):
            for key, fn in batch.items():
                start = time.perf_counter()
                fn()
                rates[key].append(len(texts) / (time.perf_counter() - start))
            for key, fn in single.items():
                calls, start = 200, time.perf_counter()
                for _ in range(calls):
                    fn()
                rates[key].append(calls / (time.perf_counter() - start))
    print(f"throughput on {len(texts)} IMDB test texts, median of {rounds} interleaved rounds:")
    for key, values in rates.items():
        unit = "calls/s" if key in single else "texts/s"
        print(f"  {key:40s} {statistics.median(values):>12,.0f} {unit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--sets", default="mr,sst2,imdb")
    parser.add_argument("--sections", default="parity,throughput")
    parser.add_argument("--show", type=int, default=5, help="mismatching texts to print per set")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    bad = parity(args.data, args.sets.split(","), args.show) if "parity" in sections else 0
    if "throughput" in sections:
        throughput(args.data, args.rounds)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
