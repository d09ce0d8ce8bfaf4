"""CPU inference: PyTorch eager against ONNX Runtime, single-text latency (p50, p99) and batch throughput.

Why it matters: `textcls export` exists so a model can be served without PyTorch; this measures what ONNX Runtime
buys over `load_classifier(...).predict` on the same inputs. The models are untrained but full-size (weights do not
change the cost): a 50,000-word vocabulary built from the IMDB training texts, TextCNN with 128-d embeddings and
3 x 100 feature maps (widths 3, 4, 5), the MLP with 128-d embeddings and one 256-unit hidden layer (configs/mlp.yaml).
Both runtimes get the same token ids (textcls's tokenizer, max_length 256) and the same thread count, and are timed
in interleaved rounds, so load from other processes slows both alike.

    .venv/bin/python benchmarks/inference.py
    options (defaults): --data ../shared/data --threads 1 --texts 200 --batch-texts 2048 --rounds 3

Latency: one text per call, end to end (tokenize, pad, forward) and forward only, over `--texts` texts drawn from
SST-2 (short sentences) and IMDB (long reviews, truncated to 256 tokens). Throughput: `--batch-texts` IMDB reviews
in length-sorted batches of 256, texts per second, median of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import tokenizers
import torch

from textcls.data.tokenizer import WordTokenizer
from textcls.export import export_onnx, serving_tokenizer_json
from textcls.inference import Classifier, _flatten, _pad
from textcls.models import MLP, TextCNN

ROOT = Path(__file__).resolve().parents[1]
KINDS = {
    "torch e2e": "PyTorch, end to end",
    "onnx e2e": "ONNX RT, end to end",
    "served": "ONNX RT + tokenizers (exported dir)",
    "torch fwd": "PyTorch, forward only",
    "onnx fwd": "ONNX RT, forward only",
}


def read_texts(path: Path) -> list[str]:
    return pacsv.read_csv(path)["text"].to_pylist()


def build(name: str, tokenizer: WordTokenizer) -> Classifier:
    torch.manual_seed(0)
    if name == "textcnn":
        model = TextCNN(tokenizer.vocab_size, 2, embedding_dim=128, kernel_sizes=(3, 4, 5), num_filters=100)
    else:
        model = MLP(tokenizer.vocab_size, 2, embedding_dim=128, hidden_dims=(256,))
    return Classifier(model, tokenizer, ["negative", "positive"], max_length=256)


def ort_logits(clf: Classifier, session: ort.InferenceSession, texts: list[str], batch_size: int) -> np.ndarray:
    """The same length-sorted batching as Classifier.logits, with ONNX Runtime doing the forward pass."""
    flat, offsets = _flatten(clf.tokenizer.encode(pa.array(texts, pa.string()), clf.max_length))
    order = np.argsort(-np.diff(offsets), kind="stable")
    out = np.empty((len(order), len(clf.label_names)), np.float32)
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        out[rows] = session.run(["logits"], {"input_ids": _pad(flat, offsets, rows, clf.tokenizer.pad_id)})[0]
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def latency(
    clf: Classifier, session: ort.InferenceSession, served: tokenizers.Tokenizer, texts: list[str], rounds: int
) -> dict[str, list[float]]:
    """Seconds per single-text call, for each way of running it; the ways are interleaved text by text."""
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    encoded = [clf.encode([t]) for t in texts]
    with torch.inference_mode():
        for _ in range(rounds):
            for text, ids in zip(texts, encoded, strict=True):
                start = time.perf_counter()
                clf.logits([text])
                times["torch e2e"].append(time.perf_counter() - start)

                start = time.perf_counter()
                session.run(["logits"], {"input_ids": clf.encode([text]).numpy()})
                times["onnx e2e"].append(time.perf_counter() - start)

                start = time.perf_counter()
                session.run(["logits"], {"input_ids": np.array([served.encode(text).ids], dtype=np.int64)})
                times["served"].append(time.perf_counter() - start)

                start = time.perf_counter()
                clf.model(ids)
                times["torch fwd"].append(time.perf_counter() - start)

                array = ids.numpy()
                start = time.perf_counter()
                session.run(["logits"], {"input_ids": array})
                times["onnx fwd"].append(time.perf_counter() - start)
    return times


def throughput(clf: Classifier, session: ort.InferenceSession, texts: list[str], rounds: int) -> dict[str, float]:
    """Median texts per second over `rounds` interleaved rounds, end to end, batches of 256."""
    times: dict[str, list[float]] = {"torch": [], "onnx": []}
    for _ in range(rounds):
        start = time.perf_counter()
        clf.logits(texts, batch_size=256)
        times["torch"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ort_logits(clf, session, texts, 256)
        times["onnx"].append(time.perf_counter() - start)
    return {name: len(texts) / statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both runtimes")
    parser.add_argument("--texts", type=int, default=200, help="texts per latency measurement")
    parser.add_argument("--batch-texts", type=int, default=2048, help="texts per throughput measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1

    train = read_texts(args.data / "imdb" / "train.csv")
    tokenizer = WordTokenizer.train(pa.array(train, pa.string()), max_vocab_size=50_000)
    rng = np.random.default_rng(0)
    imdb = read_texts(args.data / "imdb" / "test.csv")
    sst2 = read_texts(args.data / "sst2" / "test.csv")
    samples = {
        "sst2": [sst2[i] for i in rng.choice(len(sst2), args.texts, replace=False)],
        "imdb": [imdb[i] for i in rng.choice(len(imdb), args.texts, replace=False)],
    }
    batch = [imdb[i] for i in rng.choice(len(imdb), args.batch_texts, replace=False)]
    print(f"vocabulary {tokenizer.vocab_size:,}; threads {args.threads}; torch {torch.__version__}; "
          f"onnxruntime {ort.__version__}")  # fmt: skip
    for name, sample in samples.items():
        mean_tokens = np.mean([min(len(t.split()), 256) for t in sample])
        print(f"{name}: {len(sample)} texts for latency, ~{mean_tokens:.0f} words each (max_length 256)")

    for model_name in ("textcnn", "mlp"):
        clf = build(model_name, tokenizer)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(clf, path)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        parameters = sum(p.numel() for p in clf.model.parameters())
        np.testing.assert_allclose(ort_logits(clf, session, batch[:64], 256), clf.logits(batch[:64]), atol=1e-4)
        print(f"\n{model_name} ({parameters / 1e6:.2f} M parameters)")
        served = tokenizers.Tokenizer.from_str(serving_tokenizer_json(clf.tokenizer, clf.max_length))
        served.no_padding()
        print(f"  {'latency, one text per call':<46}{'p50 ms':>8}{'p99 ms':>8}  p50 vs PyTorch")
        for data_name, sample in samples.items():
            # Warm-up over the same texts: oneDNN builds a convolution kernel per new sequence length, once.
            latency(clf, session, served, sample, 1)
            times = latency(clf, session, served, sample, args.rounds)
            for kind, label in KINDS.items():
                base = times["torch fwd" if kind.endswith("fwd") else "torch e2e"]
                p50, p99 = percentile(times[kind], 50), percentile(times[kind], 99)
                ratio = "" if kind.startswith("torch") else f"  {percentile(base, 50) / p50:.2f}x faster"
                print(f"  {data_name + ' ' + label:<46}{p50 * 1e3:>8.3f}{p99 * 1e3:>8.3f}{ratio}")
        rates = throughput(clf, session, batch, args.rounds)
        print(
            f"  throughput, {len(batch)} IMDB reviews, batches of 256: torch {rates['torch']:,.0f} texts/s, "
            f"onnx {rates['onnx']:,.0f} texts/s ({rates['onnx'] / rates['torch']:.2f}x)"
        )


if __name__ == "__main__":
    main()
