"""Draw the serving latency histogram for the docs from a `benchmarks/serve.py --latencies` file.

    .venv/bin/python benchmarks/serve.py --latencies docs/serving/latencies.json
    .venv/bin/python scripts/docs/plot_serving.py --latencies docs/serving/latencies.json

The picture goes to docs/img/serve_latency.png (--out). One panel per network and concurrency: the distribution of
request latencies (send to last byte, log scale) with dynamic batching on and off, per backend, with each one's p50
and p99 in the legend. The caption under the figure says when, where and under what load it was measured.
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

STYLES = {
    ("torch", "on"): ("tab:blue", "-"),
    ("torch", "off"): ("tab:blue", ":"),
    ("onnx", "on"): ("tab:orange", "-"),
    ("onnx", "off"): ("tab:orange", ":"),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def select(runs: list[dict[str, Any]], concurrency: list[int] | None) -> list[dict[str, Any]]:
    chosen = [r for r in runs if concurrency is None or r["concurrency"] in concurrency]
    if not chosen:
        raise SystemExit(f"no run at concurrency {concurrency} in the latencies file")
    return chosen


def plot(data: dict[str, Any], concurrency: list[int] | None, out: Path) -> None:
    runs = select(data["runs"], concurrency)
    models = sorted({r["model"] for r in runs})
    levels = sorted({r["concurrency"] for r in runs})
    everything = [x for r in runs for x in r["latencies_ms"] if x > 0]
    low, high = min(everything), max(everything)
    bins = [low * (high / low) ** (i / 60) for i in range(61)]
    size = (max(6.5, 4.2 * len(levels)), 3.0 * len(models) + 0.4)
    fig, axes = plt.subplots(len(models), len(levels), figsize=size, squeeze=False, sharex=True)
    for row, model in enumerate(models):
        for col, level in enumerate(levels):
            ax = axes[row][col]
            for run in (r for r in runs if r["model"] == model and r["concurrency"] == level):
                color, line = STYLES.get((run["backend"], run["batching"]), ("gray", "-"))
                values = run["latencies_ms"]
                label = (
                    f"{run['backend']}, batching {run['batching']}: "
                    f"p50 {percentile(values, 50):.0f}, p99 {percentile(values, 99):.0f} ms"
                )
                ax.hist(values, bins=bins, histtype="step", color=color, linestyle=line, linewidth=1.5, label=label)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{model}, {level} concurrent clients", fontsize=10)
            ax.legend(fontsize=7, loc="best")
            if row == len(models) - 1:
                ax.set_xlabel("latency per request, ms (log scale)")
            if col == 0:
                ax.set_ylabel("requests")
    meta = data["meta"]
    load = meta["load_average"]
    caption = (
        f"{meta['date']}, {meta['machine']}, load average {load[0]} at start and {load[1]} at the end; "
        f"{meta['command']}"
    )
    width = fig.get_figwidth()
    fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, int(width * 17))), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latencies", type=Path, required=True, help="the JSON file benchmarks/serve.py wrote")
    parser.add_argument("--out", type=Path, default=Path("docs/img/serve_latency.png"))
    parser.add_argument("--concurrency", type=int, nargs="+", help="only these concurrency levels (default: all)")
    args = parser.parse_args()
    plot(json.loads(args.latencies.read_text(encoding="utf-8")), args.concurrency, args.out)


if __name__ == "__main__":
    main()
