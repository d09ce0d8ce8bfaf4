"""Draw the demo's learning curves and per-class F1 for the docs from a real `make train` run.

    make train 2>&1 | tee train.log
    python scripts/docs/plot_demo.py --metrics runs/textcnn/<run>/metrics.csv --report train.log --keep docs/demo

`--metrics` is the run's metrics.csv (Lightning's CSVLogger); `--report` is what `make train` printed (its per-class
precision / recall / F1 table is read from it). `--keep DIR` also copies both inputs, trimmed to what the plots use,
so the pictures can be redrawn from the repository alone (`--metrics docs/demo/metrics.csv --report
docs/demo/report.txt`).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Each column of metrics.csv as (step, value) pairs, for the rows where it is set."""
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series.setdefault(key, []).append((int(row["step"]), float(value)))
    return series


def read_report(text: str) -> list[tuple[str, float, int]]:
    """(class, F1, support) from the per-class table the test prints (rich box drawing, one row per class)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        is_row = len(cells) == 5 and all(re.fullmatch(r"[0-9.]+", c) for c in cells[1:4]) and cells[4].isdigit()
        if is_row and not cells[0].endswith(" avg"):  # the macro / weighted average rows are not classes
            rows.append((cells[0], float(cells[3]), int(cells[4])))
    if not rows:
        raise SystemExit("no per-class table (class, precision, recall, F1, support) found in the report")
    return rows


def report_lines(text: str) -> list[str]:
    keep = []
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if (len(cells) == 5 and cells[4].isdigit()) or "precision" in line.lower():
            keep.append(line.rstrip())
    return keep


def plot_curves(series: dict[str, list[tuple[int, float]]], out: Path) -> None:
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for key, label in (("train/loss_step", "train/loss (per step)"), ("val/loss", "val/loss (per epoch)")):
        if key in series:
            steps, values = zip(*series[key], strict=True)
            loss.plot(steps, values, marker="o" if key.startswith("val") else None, label=label)
    loss.set(xlabel="optimizer step", ylabel="cross-entropy", title="Loss")
    loss.legend()
    for key in ("val/acc", "val/f1"):
        if key in series:
            steps, values = zip(*series[key], strict=True)
            acc.plot(steps, values, marker="o", label=key)
    acc.set(xlabel="optimizer step", ylabel="score", title="Validation accuracy and macro-F1")
    acc.legend()
    fig.suptitle("make train: TextCNN + Adam on the demo data")
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_per_class(rows: list[tuple[str, float, int]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rows)), constrained_layout=True)
    names = [f"{name} ({support})" for name, _, support in rows]
    bars = ax.barh(names, [f1 for _, f1, _ in rows], color="#3f51b5")
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.set(xlim=(0, 1.1), xlabel="F1 on the test split (support in brackets)", title="Per-class F1, best checkpoint")
    ax.invert_yaxis()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, default=ROOT / "docs/demo/metrics.csv", help="the run's metrics.csv")
    parser.add_argument("--report", type=Path, default=ROOT / "docs/demo/report.txt", help="what make train printed")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img", help="folder for the two PNG files")
    parser.add_argument("--keep", type=Path, help="also copy the inputs here (trimmed), to redraw from later")
    args = parser.parse_args(argv)
    report = args.report.read_text(encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_curves(read_metrics(args.metrics), args.out / "demo_curves.png")
    plot_per_class(read_report(report), args.out / "demo_per_class_f1.png")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if args.metrics.resolve() != (args.keep / "metrics.csv").resolve():
            (args.keep / "metrics.csv").write_text(args.metrics.read_text(encoding="utf-8"), encoding="utf-8")
        (args.keep / "report.txt").write_text("\n".join(report_lines(report)) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'demo_curves.png'} and {args.out / 'demo_per_class_f1.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
