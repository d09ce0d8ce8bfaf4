"""Serving under load: `textcls serve` as a real subprocess on 127.0.0.1, a fixed number of requests per run.

For each network (TextCNN, MLP) and backend (torch: the checkpoint; onnx: its `textcls export`), a server is started
with dynamic batching on (the defaults: --max_batch_size 32 --batch_timeout 0.005) and off (--max_batch_size 1), and
driven at concurrency 1, 8, 32 and 64: that many keep-alive connections, each sending one review per request
(`{"text": ...}`) as soon as its previous answer is in, until `--requests` answers are in. Reported: answers per
second and p50 / p95 / p99 latency (send to last byte). The ceiling, measured in the same run in this process, is
in-process prediction on the same texts in batches of 256: `Classifier.predict` for torch, the server's own ONNX
backend for onnx, with no HTTP and no load generator competing for the cores.

The models are trained for a few steps on the IMDB training reviews (so the vocabulary and sizes are the recipes'
real ones: configs/textcnn.yaml, configs/mlp.yaml); weights do not change the cost. The requests are IMDB test
reviews (about 230 words; truncated to 256 tokens as in training).

    .venv/bin/python benchmarks/serve.py
    options (defaults): --data ../shared/data/imdb --requests 600 --concurrency 1 8 32 64
                        --models textcnn mlp --backends torch onnx --latencies FILE.json

`--latencies FILE.json` also keeps every request's latency per run, for the docs' histogram
(scripts/docs/plot_serving.py draws docs/img/serve_latency.png from it).

Targets (issue 16): at concurrency 32, batching gives >= 3x the throughput of batching off, and the server reaches
>= 50 % of the in-process ceiling; at concurrency 8, p99 latency within 3x its p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
TEXTCLS = str(Path(sys.executable).parent / "textcls")
CONFIGS = {"textcnn": "configs/textcnn.yaml", "mlp": "configs/mlp.yaml"}
BATCHING = {"on": [], "off": ["--max_batch_size", "1"]}
WARMUP_REQUESTS = 64


@dataclass
class Run:
    model: str
    backend: str
    batching: str
    concurrency: int
    throughput: float
    p50: float
    p95: float
    p99: float
    errors: int
    latencies_ms: list[float]


def read_texts(path: Path, count: int, seed: int = 0) -> list[str]:
    texts = pacsv.read_csv(path)["text"].to_pylist()
    random.Random(seed).shuffle(texts)
    return [t for t in texts if t.strip()][:count]


def train(model: str, data: Path, workdir: Path) -> Path:
    """A few optimizer steps of the recipe on the training reviews: a checkpoint of the real sizes."""
    subprocess.run(
        [TEXTCLS, "fit", "--config", str(ROOT / CONFIGS[model]), "--data.train_file", str(data / "train.csv"),
         "--trainer.max_steps", "20", "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
         "--test_after_fit", "false", "--runs_root", str(workdir / "runs")],
        check=True, cwd=workdir, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (checkpoint,) = (workdir / "runs").glob("*/*/checkpoints/last.ckpt")
    return checkpoint


def export(checkpoint: Path, out: Path) -> Path:
    subprocess.run([TEXTCLS, "export", "--ckpt_path", str(checkpoint), "--output", str(out)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return out


class Server:
    def __init__(self, model_args: list[str], extra: list[str], workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = (workdir / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [TEXTCLS, "serve", *model_args, *extra, "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server not ready after 300 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this server started
            self.process.wait()
        self.log.close()


async def _client(port: int, bodies: list[bytes], next_index: list[int], total: int, latencies: list[float]) -> int:
    """One keep-alive connection sending requests one after another; returns its count of non-200 answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while next_index[0] < total:
            i = next_index[0]
            next_index[0] += 1
            body = bodies[i % len(bodies)]
            request = (
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return errors


async def _load(port: int, bodies: list[bytes], concurrency: int, total: int) -> tuple[float, list[float], int]:
    next_index, latencies = [0], []
    start = time.perf_counter()
    errors = await asyncio.wait_for(
        asyncio.gather(*(_client(port, bodies, next_index, total, latencies) for _ in range(concurrency))),
        timeout=600,
    )
    return time.perf_counter() - start, latencies, sum(errors)


def load(port: int, bodies: list[bytes], concurrency: int, total: int) -> tuple[float, list[float], int]:
    return asyncio.run(_load(port, bodies, concurrency, total))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ceiling(backend: str, path: Path, texts: list[str], rounds: int = 3) -> float:
    """In-process texts per second on the same texts, batches of 256, median of `rounds`."""
    if backend == "torch":
        from textcls.inference import load_classifier

        clf = load_classifier(path)

        def run() -> None:
            clf.predict(texts, batch_size=256)
    else:
        from textcls.serve.backends import OnnxBackend
        from textcls.serve.tasks import task_for

        onnx = OnnxBackend(path)
        task = task_for(onnx.info.task, onnx.info.label_names)

        def run() -> None:
            task.records(task.probabilities(onnx.logits(texts)))

    run()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return len(texts) / statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "imdb")
    parser.add_argument("--requests", type=int, default=600, help="answers per run (after a warm-up)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--models", nargs="+", default=["textcnn", "mlp"], choices=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    parser.add_argument("--texts", type=int, default=512, help="distinct test reviews the requests cycle through")
    parser.add_argument("--latencies", type=Path, help="also write every run's latencies (ms) to this JSON file")
    args = parser.parse_args()

    texts = read_texts(args.data / "test.csv", args.texts)
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    load_before = os.getloadavg()
    print(f"{date.today()} | {cpu_name()}, {os.cpu_count()} cores | load average {load_before[0]:.2f} at start")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    runs: list[Run] = []
    ceilings: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="textcls-bench-serve-") as scratch:
        work = Path(scratch)
        for model in args.models:
            (work / model).mkdir()
            checkpoint = train(model, args.data, work / model)
            paths = {"torch": checkpoint}
            if "onnx" in args.backends:
                paths["onnx"] = export(checkpoint, work / model / "export")
            for backend in args.backends:
                model_args = (
                    ["--ckpt_path", str(paths[backend])] if backend == "torch" else ["--model_dir", str(paths[backend])]
                )
                ceilings[model, backend] = ceiling(backend, paths[backend], texts)
                for batching, extra in BATCHING.items():
                    server = Server(model_args, extra, work)
                    try:
                        load(server.port, bodies, 8, WARMUP_REQUESTS)
                        for concurrency in args.concurrency:
                            elapsed, latencies, errors = load(server.port, bodies, concurrency, args.requests)
                            run = Run(
                                model, backend, batching, concurrency, len(latencies) / elapsed,
                                *(1000 * percentile(latencies, q) for q in (50, 95, 99)), errors,
                                [round(1000 * x, 3) for x in latencies],
                            )  # fmt: skip
                            runs.append(run)
                            print(
                                f"{model:8} {backend:5} batching {batching:3} c={concurrency:<3} "
                                f"{run.throughput:8.1f} req/s  p50 {run.p50:7.1f}  p95 {run.p95:7.1f}  "
                                f"p99 {run.p99:7.1f} ms  errors {errors}",
                                flush=True,
                            )
                    finally:
                        server.stop()
    load_after = os.getloadavg()
    report(runs, ceilings, load_before, load_after)
    if args.latencies:
        write_latencies(args.latencies, runs, load_before, load_after)


def write_latencies(path: Path, runs: list[Run], before: tuple, after: tuple) -> None:
    """Every run's latencies with the conditions they were measured in, so the histogram can be redrawn."""
    meta = {
        "date": str(date.today()),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "load_average": [round(before[0], 2), round(after[0], 2)],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "runs": [vars(r) for r in runs]}, indent=1) + "\n", encoding="utf-8")
    print(f"latencies written to {path}")


def report(runs: list[Run], ceilings: dict[tuple[str, str], float], before: tuple, after: tuple) -> None:
    print()
    print("| network | backend | batching | concurrency | answers/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r.model} | {r.backend} | {r.batching} | {r.concurrency} | {r.throughput:.0f} | {r.p50:.1f} "
            f"| {r.p95:.1f} | {r.p99:.1f} |"
        )
    print()
    print("| network | backend | in-process ceiling, texts/s | c=32 batching on / off (>= 3) "
          "| c=32 server / ceiling (>= 0.5) | c=8 p99 / p50, batching on (<= 3) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|")
    by_key = {(r.model, r.backend, r.batching, r.concurrency): r for r in runs}
    for (model, backend), top in ceilings.items():
        on, off, eight = (by_key.get((model, backend, b, c)) for b, c in (("on", 32), ("off", 32), ("on", 8)))
        speedup = (
            f"{on.throughput / off.throughput:.2f} {_met(on.throughput / off.throughput >= 3)}" if on and off else "-"
        )
        share = f"{on.throughput / top:.2f} {_met(on.throughput / top >= 0.5)}" if on else "-"
        tail = f"{eight.p99 / eight.p50:.2f} {_met(eight.p99 / eight.p50 <= 3)}" if eight else "-"
        print(f"| {model} | {backend} | {top:.0f} | {speedup} | {share} | {tail} |")
    errors = sum(r.errors for r in runs)
    print(f"\nnon-200 answers: {errors}; load average {before[0]:.2f} at start, {after[0]:.2f} at the end")


def _met(ok: bool) -> str:
    return "(met)" if ok else "(missed)"


if __name__ == "__main__":
    main()
