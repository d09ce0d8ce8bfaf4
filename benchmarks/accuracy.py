"""Accuracy harness (issue #7): train textcls configs (and fastText) on a folder of `label,text` CSVs with the protocol
of Kim (2014), several seeds, and report test accuracy mean ± std and training (fit) wall time.

    .venv/bin/python benchmarks/accuracy.py ../shared/data/sst2 --config configs/benchmarks/textcnn_sst2.yaml \\
        --seeds 0 1 2 --jobs 1 --work-dir /tmp/me -- --trainer.max_epochs 10
    .venv/bin/python benchmarks/accuracy.py ../shared/data/mr --config configs/mlp.yaml --folds 10 --fasttext
    .venv/bin/python benchmarks/accuracy.py --summary              # the table of everything under --out

The protocol follows from the folder:
  train.csv dev.csv test.csv   train, select the epoch on dev (best val/acc checkpoint), report test   (SST-2)
  train.csv test.csv           a stratified 10% dev split carved from train with a fixed seed          (IMDB)
  all.csv                      stratified 10-fold cross-validation, fixed shuffle; in each fold a fixed 10% of
                               the training folds is the dev set; the test fold is reported            (MR)
  train.jsonl dev.jsonl test.jsonl   multi-label: a `text` and a `labels` list per line (accuracy_multilabel.py);
                               textcls runs get --data.label_column labels, select on val/f1_macro and report
                               test/f1_macro, f1_micro, map, subset_acc, hamming                  (GoEmotions)
Splits depend on the data only (never on --seeds or the config), so every method sees the same ones. They are written
once under --work-dir, never into the repository.

Each run is `textcls fit --config X [--config ...] --data.train_file .. --data.val_file .. --data.test_file ..
--seed_everything SEED [overrides after --]` in its own subprocess (TextclsCLI in-process there, one torch thread),
with progress bars off and runs/caches under --work-dir; the best val/acc checkpoint is tested after fit.
Fit time = wall seconds from the CLI's instantiate_classes (the DataModule reads the CSVs and builds the vocabulary
there) to the end of Trainer.fit: data setup included, interpreter start-up, imports and the final test excluded.
Every run starts with an empty tokenization cache, so every seed pays the same data setup.

Rows go to <out>/<dataset>/<config stems joined by +>.csv, one per (seed, fold) as soon as the run ends; a rerun skips
rows already there (a file made with another effective config, the one textcls merges from the configs and overrides,
is refused: --overwrite discards it; a comment or a value a later config replaces changes nothing).
At the end (or with --summary alone) a markdown table of every CSV under <out> is printed and written to
<out>/summary.md.

--fasttext also trains fastText (unigrams and bigrams, 2 threads) on the same splits and seeds, epoch and lr chosen
on the dev set from a small fixed grid (FASTTEXT_GRID below, or --fasttext-epochs / --fasttext-lrs); rows go to
fasttext_unigram.csv / fasttext_bigram.csv.
On a multi-label folder it trains fastText `-loss ova` with bigrams instead (fasttext_ova_bigram.csv).
--tfidf also trains TF-IDF uni+bigrams + logistic regression (scikit-learn; one-vs-rest for multi-label): tfidf_lr.csv.
The multi-label baselines tune one decision threshold per label on dev (accuracy_multilabel.THRESHOLD_GRID); see
accuracy_baselines.py for their settings. Multi-label results have their own table in the summary.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import accuracy_baselines as baselines
import accuracy_multilabel as ml

ROOT = Path(__file__).resolve().parents[1]
SPLIT_SEED = 20141025  # shuffles MR into folds and carves dev sets; fixed so every config and seed sees the same splits
DEV_FRACTION = 0.1
PROTOCOL_VERSION = 1  # part of each results file's config hash: bump when the protocol changes
FASTTEXT_GRID = {"epoch": [5, 10, 20], "lr": [0.05, 0.1, 0.25, 0.5, 1.0]}
FASTTEXT_THREADS = 2
FIELDS = [*ml.ROW_KEY, "dev_acc", "test_acc", "test_f1", *ml.RUN_FIELDS, *ml.RECORD_FIELDS]


class HarnessError(Exception):
    """A mistake of the user's (folder, config, results file): one line on stderr, exit status 2."""


# ----------------------------------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    fold: str  # "0".."9" for cross-validation, "-" for a fixed split
    train: Path
    dev: Path
    test: Path
    sizes: tuple[int, int, int]


@dataclass(frozen=True)
class Dataset:
    name: str
    protocol: str  # "dev", "holdout", "cv" or "multilabel"
    n_folds: int
    splits: list[Split]
    labels: tuple[str, ...] = ()  # multi-label only: the training split's label names, sorted


def read_rows(path: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["label", "text"]:
                raise HarnessError(f"{path}: expected a CSV with the header 'label,text', found {header!r}")
            for row in reader:
                if row and len(row) < 2:
                    raise HarnessError(f"{path}:{reader.line_num}: expected 2 fields (label,text), found {row!r}")
                if row:
                    rows.append((row[0], row[1]))
        except UnicodeDecodeError as err:
            raise HarnessError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except csv.Error as err:
            raise HarnessError(f"{path}:{reader.line_num}: {err}") from None
    return rows


def write_rows(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["label", "text"])
        writer.writerows(rows)


def stratified_folds(labels: list[str], k: int, seed: int = SPLIT_SEED) -> list[int]:
    """Fold number of every row: each class shuffled with a fixed seed, then dealt round-robin across the folds
    (continuing from class to class, so fold sizes differ by at most one)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    fold = [0] * len(labels)
    offset = 0
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        for position, i in enumerate(rng.permutation(idx).tolist()):
            fold[i] = (offset + position) % k
        offset += len(idx)
    return fold


def stratified_dev(labels: list[str], fraction: float, seed: Any) -> set[int]:
    """Indices (into labels) of a stratified dev sample: round(fraction x class size) rows of each class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dev: set[int] = set()
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        dev.update(rng.permutation(idx)[: round(fraction * len(idx))].tolist())
    return dev


def _file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]


def _publish_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place; another process that got there first wins (same content)."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def count_rows(path: Path) -> int:
    return len(read_rows(path))


def load_dataset(folder: Path, n_folds: int, work_dir: Path) -> Dataset:
    if not folder.is_dir():
        raise HarnessError(f"dataset folder '{folder}' does not exist or is not a directory")
    folder = folder.absolute()  # the paths reach workers, which run in the repository root, not in this cwd
    present = {p.name for p in folder.glob("*.csv")}
    name = folder.resolve().name
    if all((folder / f).is_file() for f in ml.ML_FILES):
        paths = [folder / f for f in ml.ML_FILES]
        labels, sizes = ml.check_split(*paths)
        return Dataset(name, "multilabel", 1, [Split("-", *paths, sizes)], tuple(labels))
    if {"train.csv", "dev.csv", "test.csv"} <= present:
        paths = [folder / "train.csv", folder / "dev.csv", folder / "test.csv"]
        sizes = tuple(count_rows(p) for p in paths)
        return Dataset(name, "dev", 1, [Split("-", *paths, sizes)])  # type: ignore[arg-type]
    if {"train.csv", "test.csv"} <= present:
        return _holdout(name, folder, work_dir)
    if "all.csv" in present:
        if n_folds < 2:
            raise HarnessError(f"--folds {n_folds}: cross-validation needs at least 2 folds")
        return _cross_validation(name, folder / "all.csv", n_folds, work_dir)
    raise HarnessError(
        f"'{folder}' has no known layout: expected train.csv+dev.csv+test.csv, train.csv+test.csv, all.csv, "
        f"or train.jsonl+dev.jsonl+test.jsonl "
        f"(found: {', '.join(sorted(present)) or 'no CSV files'})"
    )


def with_fewer_training_rows(data: Dataset, n_rows: int, work_dir: Path) -> Dataset:
    """The same splits with each training file cut to a stratified n_rows sample (fixed seed): how a recipe does on a
    smaller set of the same kind. Dev and test stay whole."""
    if data.protocol == "multilabel":
        raise HarnessError("--train-rows works on single-label folders only")
    splits = []
    for split in data.splits:
        rows = read_rows(split.train)
        if n_rows >= len(rows):
            raise HarnessError(f"--train-rows {n_rows}: the training split has only {len(rows)} rows")
        keep = stratified_dev([label for label, _ in rows], n_rows / len(rows), SPLIT_SEED)
        target = work_dir / "splits" / f"{data.name}-{_file_digest(split.train)}-train{n_rows}-s{SPLIT_SEED}"
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent))
            write_rows(tmp / "train.csv", [r for i, r in enumerate(rows) if i in keep])
            _publish_dir(tmp, target)
        splits.append(replace(split, train=target / "train.csv", sizes=(len(keep), *split.sizes[1:])))
    return replace(data, name=f"{data.name}-train{n_rows}", splits=splits)


def _holdout(name: str, folder: Path, work_dir: Path) -> Dataset:
    train_path, test_path = folder / "train.csv", folder / "test.csv"
    rows = read_rows(train_path)
    target = work_dir / "splits" / f"{name}-{_file_digest(train_path)}-dev{DEV_FRACTION}-s{SPLIT_SEED}"
    dev = stratified_dev([label for label, _ in rows], DEV_FRACTION, SPLIT_SEED)
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        write_rows(tmp / "train.csv", [r for i, r in enumerate(rows) if i not in dev])
        write_rows(tmp / "dev.csv", [r for i, r in enumerate(rows) if i in dev])
        _publish_dir(tmp, target)
    sizes = (len(rows) - len(dev), len(dev), count_rows(test_path))
    return Dataset(name, "holdout", 1, [Split("-", target / "train.csv", target / "dev.csv", test_path, sizes)])


def _cross_validation(name: str, all_path: Path, k: int, work_dir: Path) -> Dataset:
    rows = read_rows(all_path)
    labels = [label for label, _ in rows]
    if len(rows) < k:
        raise HarnessError(f"{all_path}: {len(rows)} rows cannot make {k} folds")
    target = work_dir / "splits" / f"{name}-{_file_digest(all_path)}-cv{k}-dev{DEV_FRACTION}-s{SPLIT_SEED}"
    fold_of = stratified_folds(labels, k)
    plan = []
    for f in range(k):
        test = [i for i in range(len(rows)) if fold_of[i] == f]
        rest = [i for i in range(len(rows)) if fold_of[i] != f]
        dev_pos = stratified_dev([labels[i] for i in rest], DEV_FRACTION, [SPLIT_SEED, f])
        dev = [i for p, i in enumerate(rest) if p in dev_pos]
        train = [i for p, i in enumerate(rest) if p not in dev_pos]
        plan.append((train, dev, test))
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        for f, parts in enumerate(plan):
            (tmp / f"fold{f}").mkdir()
            for part, idx in zip(("train", "dev", "test"), parts, strict=True):
                write_rows(tmp / f"fold{f}" / f"{part}.csv", [rows[i] for i in idx])
        _publish_dir(tmp, target)
    splits = [
        Split(
            str(f),
            target / f"fold{f}" / "train.csv",
            target / f"fold{f}" / "dev.csv",
            target / f"fold{f}" / "test.csv",
            (len(tr), len(dv), len(te)),
        )
        for f, (tr, dv, te) in enumerate(plan)
    ]
    return Dataset(name, "cv", k, splits)


# ---------------------------------------------------------------------------------------------------- results files


class ResultsFile:
    """<out>/<dataset>/<name>.csv: one row per finished (seed, fold); every row carries the config hash."""

    def __init__(self, path: Path, config_hash: str, overwrite: bool, fields: list[str] | None = None) -> None:
        self.path, self.config_hash, self.fields = path, config_hash, fields or FIELDS
        self.lock = threading.Lock()
        if overwrite and path.exists():
            path.unlink()
        self.done: set[tuple[str, str]] = set()
        for row in read_results(path):
            if row["config_hash"] != config_hash:
                raise HarnessError(
                    f"{path} holds rows of another config (hash {row['config_hash']}, "
                    f"now {config_hash}); pass --overwrite to discard them, or another --out"
                )
            self.done.add((row["seed"], row["fold"]))

    def has(self, seed: int, fold: str) -> bool:
        return (str(seed), fold) in self.done

    def append(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            values = [_cell(row.get(k, "")) for k in self.fields]
            buf = (_csv_line(self.fields) if new else "") + _csv_line(values)
            with self.path.open("a", encoding="utf-8", newline="") as f:
                f.write(buf)  # one write: a row is there whole or not at all
                f.flush()
                os.fsync(f.fileno())
            self.done.add((str(row["seed"]), str(row["fold"])))


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _csv_line(values: list[Any]) -> str:
    import io

    s = io.StringIO()
    csv.writer(s, lineterminator="\n").writerow(values)
    return s.getvalue()


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("finished_utc")]


def config_hash(configs: list[Path], overrides: list[str], extra: str = "") -> str:
    """The results file's key. For textcls runs it hashes the config textcls trains (`effective_config`), not the
    files' text: a comment, or a value a later config replaces (the experiment's rate under a recipe's), leaves the
    rows valid; the baselines hash their settings, in `extra`."""
    h = hashlib.sha256(f"protocol{PROTOCOL_VERSION}\n{extra}\n".encode())
    if configs:
        h.update(effective_config(configs, overrides).encode())
    else:
        h.update(json.dumps(overrides).encode())
    return h.hexdigest()[:12]


def effective_config(configs: list[Path], overrides: list[str]) -> str:
    """textcls's merged config of these files and overrides, the values that differ from the defaults only."""
    command = [sys.executable, "-m", "textcls", "fit", *(a for c in configs for a in ("--config", str(c)))]
    done = subprocess.run([*command, *overrides, "--print_config=skip_default"], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise HarnessError(f"textcls cannot read the configs {' '.join(map(str, configs))}: {reason}")
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith("# "))  # "# lightning==x"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------ textcls runs


def textcls_args(
    configs: list[Path], split: Split, seed: int, run_root: Path, overrides: list[str], multi_label: bool = False
) -> list[str]:
    args = ["fit"]
    for config in configs:
        args += ["--config", str(config)]
    args += [
        f"--data.train_file={split.train}",
        f"--data.val_file={split.dev}",
        f"--data.test_file={split.test}",
        f"--seed_everything={seed}",
        f"--runs_root={run_root / 'runs'}",
        f"--data.cache_dir={run_root / 'cache'}",
        "--trainer.enable_progress_bar=false",
        "--test_after_fit=true",
        *(["--data.label_column=labels"] if multi_label else []),
        *overrides,
    ]
    return args


def run_worker(args: list[str], run_root: Path, threads: int, log: Path, multi_label: bool = False) -> dict[str, Any]:
    """One training in a subprocess of this script (`--worker`); returns what the worker measured."""
    run_root.mkdir(parents=True, exist_ok=True)
    spec = run_root / "spec.json"
    result = run_root / "result.json"
    result.unlink(missing_ok=True)
    spec.write_text(json.dumps({"args": args, "threads": threads, "result": str(result), "multi_label": multi_label}))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        code = subprocess.call(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    if code != 0 or not result.exists():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise RuntimeError(f"exit status {code}: {last.strip()} (log: {log})")
    return json.loads(result.read_text())


def worker_main(spec_path: str) -> None:
    """Inside the subprocess: TextclsCLI in-process, timed by a subclass, metrics read from the trainer."""
    import warnings

    spec = json.loads(Path(spec_path).read_text())
    multi_label = spec.get("multi_label", False)
    dev_key = ml.TEXTCLS_MONITOR if multi_label else "val/acc"
    import torch

    torch.set_num_threads(spec["threads"])
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    from pytorch_lightning.callbacks import Callback

    from textcls.cli import TextclsCLI
    from textcls.data import DataError

    class DevCurve(Callback):
        def __init__(self) -> None:
            self.val_acc: list[float] = []

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking and dev_key in trainer.callback_metrics:
                self.val_acc.append(float(trainer.callback_metrics[dev_key]))

    class TimedCLI(TextclsCLI):
        fit_seconds = math.nan
        curve = DevCurve()

        def instantiate_classes(self) -> None:
            self._start = time.perf_counter()  # the DataModule reads the CSVs and builds the vocabulary in here
            super().instantiate_classes()
            self.trainer.callbacks.append(self.curve)

        def after_fit(self) -> None:
            self.fit_seconds = time.perf_counter() - self._start  # before the test of the best checkpoint
            super().after_fit()

    try:
        cli = TimedCLI(args=spec["args"])
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    trainer = cli.trainer
    metrics = trainer.callback_metrics
    test_key = "test/f1_macro" if multi_label else "test/acc"
    if test_key not in metrics:
        print(f"error: the run ended without test metrics ({test_key})", file=sys.stderr)
        raise SystemExit(1)
    curve = cli.curve.val_acc
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    if multi_label:
        if getattr(trainer.checkpoint_callback, "monitor", None) != dev_key:
            best = None  # the checkpoint monitored something else: its score is not a dev macro-F1
        out_ml: dict[str, Any] = {
            "dev_f1_macro": float(best) if best is not None else max(curve, default=math.nan),
            **{field: float(metrics[key]) for key, field in ml.TEXTCLS_TEST_METRICS.items() if key in metrics},
            "thresholds": "textcls (its own, tuned on dev)",
            "epochs": len(curve),
            "best_epoch": (curve.index(max(curve)) + 1) if curve else 0,
            "fit_seconds": cli.fit_seconds,
        }
        Path(spec["result"]).write_text(json.dumps(out_ml))
        return
    out = {
        "dev_acc": float(best) if best is not None else max(curve),
        "test_acc": float(metrics["test/acc"]),
        "test_f1": float(metrics["test/f1"]) if "test/f1" in metrics else math.nan,
        "epochs": len(curve),
        "best_epoch": (curve.index(max(curve)) + 1) if curve else 0,
        "fit_seconds": cli.fit_seconds,
    }
    Path(spec["result"]).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------------------- fastText


def fasttext_file(csv_path: Path, work_dir: Path) -> tuple[Path, list[str]]:
    """`__label__<i> text` lines (labels as indices, text lowercased, newlines stripped), and the gold labels."""
    rows = read_rows(csv_path)
    target = work_dir / "fasttext" / f"{_file_digest(csv_path)}.txt"
    labels = [label for label, _ in rows]
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
        with tmp.open("w", encoding="utf-8") as f:
            for label, text in rows:
                f.write(f"__label__{_ft_label(label)} {_ft_text(text)}\n")
        tmp.replace(target)
    return target, labels


def _ft_label(label: str) -> str:
    return "".join(c if not c.isspace() else "_" for c in label)


def _ft_text(text: str) -> str:
    return " ".join(text.lower().split())  # every whitespace run (newlines included) becomes one space


def fasttext_eval_rows(csv_path: Path) -> tuple[list[str], list[str]]:
    """Texts as fastText reads them, and their gold labels as it names them, from one read of the file."""
    rows = read_rows(csv_path)
    return [_ft_text(text) for _, text in rows], [_ft_label(label) for label, _ in rows]


def fasttext_predict(model: Any, texts: list[str]) -> list[str]:
    labels, _ = model.predict(texts, k=1)
    return [label[0].removeprefix("__label__") for label in labels]


def _accuracy_f1(gold: list[str], pred: list[str]) -> tuple[float, float]:
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return acc, sum(f1s) / len(f1s)


def fasttext_run(
    split: Split, seed: int, word_ngrams: int, work_dir: Path, threads: int, grid: dict[str, list[Any]]
) -> dict[str, Any]:
    import fasttext

    train, _ = fasttext_file(split.train, work_dir)
    dev_texts, dev_gold = fasttext_eval_rows(split.dev)
    test_texts, test_gold = fasttext_eval_rows(split.test)

    best: tuple[float, Any, dict[str, Any], float] | None = None
    grid_start = time.perf_counter()
    diverged: list[str] = []
    for epoch in grid["epoch"]:
        for lr in grid["lr"]:
            start = time.perf_counter()
            try:
                model = fasttext.train_supervised(
                    input=str(train), epoch=epoch, lr=lr, wordNgrams=word_ngrams, thread=threads, seed=seed, verbose=0
                )
            except RuntimeError as err:  # "Encountered NaN": this learning rate diverged; not a candidate
                if "NaN" not in str(err):
                    raise
                diverged.append(f"epoch={epoch},lr={lr}")
                continue
            seconds = time.perf_counter() - start
            dev_acc, _ = _accuracy_f1(dev_gold, fasttext_predict(model, dev_texts))
            if best is None or dev_acc > best[0]:  # ties keep the earlier (cheaper) grid point
                best = (dev_acc, model, {"epoch": epoch, "lr": lr}, seconds)
    if best is None:
        # fastText initialises only threads/10 of its input matrix (facebookresearch/fastText#1061): with fewer than 10
        # threads the rest is whatever memory it got, zeros when fresh (the 2M-bucket bigram table) and sometimes NaN
        # when reused (a unigram table of a few MB), whatever the learning rate
        raise RuntimeError(
            f"every fastText grid point diverged: {diverged}; fastText leaves (10 - threads)/10 of its input matrix "
            "uninitialised (fastText issue #1061), so try --fasttext-threads 10"
        )
    dev_acc, model, params, seconds = best
    test_acc, test_f1 = _accuracy_f1(test_gold, fasttext_predict(model, test_texts))
    params = {
        **params,
        "wordNgrams": word_ngrams,
        "thread": threads,
        "grid_seconds": round(time.perf_counter() - grid_start, 2),
    }
    return {
        "dev_acc": dev_acc,
        "test_acc": test_acc,
        "test_f1": test_f1,
        "epochs": params["epoch"],
        "best_epoch": "",
        "fit_seconds": seconds,
        "params": json.dumps(params, sort_keys=True),
    }


# -------------------------------------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(out: Path) -> str:
    lines = [
        "| dataset | config | protocol | test acc % (mean ± std over seeds) | fold std | test macro-F1 % | dev acc % "
        "| seeds | runs | median fit s | total fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    multi_label: list[tuple[str, list[dict[str, str]]]] = []
    for path in sorted(out.glob("*/*.csv")):
        rows = read_results(path)
        if not rows:
            continue
        if "test_f1_macro" in rows[0]:
            multi_label.append((path.stem, rows))
            continue
        by_seed: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            by_seed.setdefault(row["seed"], []).append(row)
        n_folds = int(rows[0]["n_folds"] or 1)
        complete = {s: rs for s, rs in by_seed.items() if len({r["fold"] for r in rs}) >= n_folds}
        seed_acc = [statistics.fmean(float(r["test_acc"]) for r in rs) for rs in complete.values()]
        seed_f1 = [statistics.fmean(float(r["test_f1"]) for r in rs) for rs in complete.values()]
        seed_dev = [statistics.fmean(float(r["dev_acc"]) for r in rs) for rs in complete.values()]
        fold_std = [statistics.stdev(float(r["test_acc"]) for r in rs) for rs in complete.values() if len(rs) > 1]
        acc, acc_std = _mean_std(seed_acc)
        fits = [float(r["fit_seconds"]) for r in rows]
        partial = len(by_seed) - len(complete)
        seeds = f"{len(complete)}" + (f" (+{partial} partial)" if partial else "")
        lines.append(
            f"| {rows[0]['dataset']} | {path.stem} | {rows[0]['protocol']} "
            f"| {_pct(acc)} ± {_pct(acc_std)} | {_pct(statistics.fmean(fold_std)) if fold_std else '–'} "
            f"| {_pct(_mean_std(seed_f1)[0])} | {_pct(_mean_std(seed_dev)[0])} | {seeds} | {len(rows)} "
            f"| {statistics.median(fits):.1f} | {sum(fits):.0f} |"
        )
    if not multi_label:
        return "\n".join(lines) + "\n"
    single = "\n".join(lines) + "\n\n" if len(lines) > 2 else ""
    return single + "Multi-label:\n\n" + ml.summary_table(multi_label)


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.2f}"


def write_summary(out: Path) -> str:
    table = summarize(out)
    text = (
        "# Accuracy harness results\n\n"
        "Written by `benchmarks/accuracy.py` from every CSV under this folder (do not edit: it is rewritten).\n"
        "Test accuracy: mean ± sample std over seeds; for cross-validation each seed's value is its mean over the\n"
        "folds, and 'fold std' is the std over folds averaged over seeds. Fit seconds: wall time of one training\n"
        "(data setup + Trainer.fit for textcls; train_supervised for fastText; vectorizer + classifier fit for\n"
        "TF-IDF). Multi-label: the same statistics of test macro-F1; the other figures are means over seeds, and\n"
        "'thresholds' says how each method chose its decision thresholds.\n\n" + table
    )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".summary.md.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / "summary.md")
    return table


# ----------------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` are passed to every `textcls fit` (e.g. -- --trainer.max_epochs 10).",
    )
    p.add_argument("dataset_dir", type=Path, nargs="?", help="folder of label,text CSVs (see the protocol above)")
    p.add_argument("--config", type=Path, action="append", default=[], help="textcls config; repeat to stack")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, default=10, help="folds of cross-validation (all.csv folders only)")
    p.add_argument("--train-rows", type=int, help="cut each training split to this many rows (stratified, fixed seed)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (each in its own subprocess)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training")
    p.add_argument("--out", type=Path, default=ROOT / "docs/results", help="results folder")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "textcls-accuracy")
    p.add_argument("--fasttext", action="store_true", help="also fastText unigrams and bigrams on the same splits")
    p.add_argument("--fasttext-threads", type=int, default=FASTTEXT_THREADS)
    p.add_argument("--fasttext-epochs", type=int, nargs="+", help="fastText grid's epochs instead of the default's")
    p.add_argument("--fasttext-lrs", type=float, nargs="+", help="fastText grid's learning rates instead")
    p.add_argument("--tfidf", action="store_true", help="also TF-IDF + logistic regression (scikit-learn)")
    p.add_argument("--tfidf-jobs", type=int, default=2, help="processes of the one-vs-rest fit (multi-label)")
    p.add_argument("--summary", action="store_true", help="only print and write the summary of --out")
    p.add_argument("--overwrite", action="store_true", help="discard this config's results file first")
    p.add_argument("--keep-runs", action="store_true", help="keep run directories (checkpoints) under --work-dir")
    args = p.parse_args(argv)
    return args, overrides


@dataclass
class Job:
    label: str
    results: ResultsFile
    row: dict[str, Any]
    run: Any  # () -> dict of measured values


def plan_jobs(args: argparse.Namespace, overrides: list[str], data: Dataset) -> list[Job]:
    jobs: list[Job] = []
    base = {"dataset": data.name, "protocol": data.protocol, "n_folds": data.n_folds}
    multi = data.protocol == "multilabel"
    fields = ml.FIELDS_ML if multi else FIELDS

    def add(stem: str, results: ResultsFile, make_run: Any) -> None:
        """One job per (seed, split) not in the results file yet; make_run(split, seed) -> the measured values."""
        for seed in args.seeds:
            for split in data.splits:
                if results.has(seed, split.fold):
                    continue
                row = {**base, "config": stem, "seed": seed, "fold": split.fold, "config_hash": results.config_hash}
                run = functools.partial(make_run, split, seed)
                jobs.append(Job(f"{data.name} {stem} seed {seed} fold {split.fold}", results, _sizes(row, split), run))

    def baseline_file(stem: str, settings: Any) -> ResultsFile:
        text = json.dumps(settings, sort_keys=True, default=str)
        digest = config_hash([], [], f"{text}\n{data.protocol}")
        return ResultsFile(args.out / data.name / f"{stem}.csv", digest, args.overwrite, fields)

    if args.config:
        stem = "+".join(c.stem for c in args.config)
        results = ResultsFile(
            args.out / data.name / f"{stem}.csv",
            config_hash(args.config, overrides, data.protocol),
            args.overwrite,
            fields,
        )

        def run_textcls(split: Split, seed: int) -> dict[str, Any]:
            # A fresh directory per run: concurrent invocations sharing --work-dir (a grid of overrides of one
            # config) must not share spec.json, result.json, checkpoints or the tokenization cache.
            runs = args.work_dir / "runs" / data.name / stem
            runs.mkdir(parents=True, exist_ok=True)
            run_root = Path(tempfile.mkdtemp(prefix=f"seed{seed}-fold{split.fold}-", dir=runs))
            cli_args = textcls_args(args.config, split, seed, run_root, overrides, multi)
            log = args.work_dir / "logs" / data.name / stem / f"{run_root.name}.log"
            measured = run_worker(cli_args, run_root, args.threads, log, multi)
            if not args.keep_runs:
                shutil.rmtree(run_root, ignore_errors=True)
            return measured

        add(stem, results, run_textcls)
    if args.fasttext and multi:
        ova_grid = _grid(args, baselines.FASTTEXT_OVA_GRID)
        grid = {**ova_grid, "thread": args.fasttext_threads, "thresholds": ml.THRESHOLD_GRID}
        run_ova = functools.partial(_ova_run, args, data, ova_grid)
        add("fasttext_ova_bigram", baseline_file("fasttext_ova_bigram", grid), run_ova)
    elif args.fasttext:
        for ngrams, stem in ((1, "fasttext_unigram"), (2, "fasttext_bigram")):
            grid = json.dumps({**_grid(args, FASTTEXT_GRID), "thread": args.fasttext_threads}, sort_keys=True)
            results = ResultsFile(
                args.out / data.name / f"{stem}.csv", config_hash([], [], f"{grid}\n{data.protocol}"), args.overwrite
            )

            def run_ft(split: Split, seed: int, ngrams: int = ngrams) -> dict[str, Any]:
                return fasttext_run(
                    split, seed, ngrams, args.work_dir, args.fasttext_threads, _grid(args, FASTTEXT_GRID)
                )

            add(stem, results, run_ft)
    if args.tfidf:
        settings = {**baselines.TFIDF, "C": baselines.LR_C, "thresholds": ml.THRESHOLD_GRID if multi else None}
        add("tfidf_lr", baseline_file("tfidf_lr", settings), functools.partial(_tfidf_run, args, data))
    return jobs


def _grid(args: argparse.Namespace, default: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {"epoch": args.fasttext_epochs or default["epoch"], "lr": args.fasttext_lrs or default["lr"]}


def _ova_run(
    args: argparse.Namespace, data: Dataset, grid: dict[str, list[Any]], split: Split, seed: int
) -> dict[str, Any]:
    splits = [ml.read_jsonl(p) for p in (split.train, split.dev, split.test)]
    train_file = args.work_dir / "fasttext" / f"ova-{_file_digest(split.train)}.txt"
    row, params = baselines.fasttext_ova(list(data.labels), splits, seed, args.fasttext_threads, train_file, grid)
    return {**row, "params": baselines.dumps(params)}


def _tfidf_run(args: argparse.Namespace, data: Dataset, split: Split, seed: int) -> dict[str, Any]:
    if data.protocol == "multilabel":
        splits = [ml.read_jsonl(p) for p in (split.train, split.dev, split.test)]
        row, params = baselines.tfidf_multilabel(list(data.labels), splits, seed, args.tfidf_jobs)
        return {**row, "params": baselines.dumps(params)}
    rows = [read_rows(p) for p in (split.train, split.dev, split.test)]
    dev_pred, test_pred, params, seconds = baselines.tfidf_single_label(rows, seed)
    dev_acc, _ = _accuracy_f1([label for label, _ in rows[1]], dev_pred)
    test_acc, test_f1 = _accuracy_f1([label for label, _ in rows[2]], test_pred)
    measured = {"dev_acc": dev_acc, "test_acc": test_acc, "test_f1": test_f1, "epochs": "", "best_epoch": ""}
    return {**measured, "fit_seconds": seconds, "params": baselines.dumps(params)}


def _sizes(row: dict[str, Any], split: Split) -> dict[str, Any]:
    return {**row, "n_train": split.sizes[0], "n_dev": split.sizes[1], "n_test": split.sizes[2]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1])
        return 0
    args, overrides = parse_args(argv)
    if args.summary and args.dataset_dir is None:
        print(write_summary(args.out), end="")
        return 0
    if args.dataset_dir is None:
        raise HarnessError("give a DATASET_DIR (or --summary alone)")
    if not args.config and not args.fasttext and not args.tfidf:
        raise HarnessError("nothing to run: give --config CONFIG (repeatable), --fasttext and/or --tfidf")
    for config in args.config:
        if not config.is_file():
            raise HarnessError(f"--config '{config}' does not exist or is not a file")
    args.config = [c.resolve() for c in args.config]
    if args.fasttext and importlib.util.find_spec("fasttext") is None:
        raise HarnessError("--fasttext needs the fasttext module: pip install fasttext-numpy2 (the `bench` extra)")
    if args.tfidf and importlib.util.find_spec("sklearn") is None:
        raise HarnessError("--tfidf needs scikit-learn: pip install scikit-learn (the `bench` extra)")
    for name in ("jobs", "threads", "fasttext_threads", "tfidf_jobs"):
        if getattr(args, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be 1 or more")
    if args.train_rows is not None and args.train_rows < 2:
        raise HarnessError("--train-rows must be 2 or more")
    if any(e < 1 for e in args.fasttext_epochs or []) or any(lr <= 0 for lr in args.fasttext_lrs or []):
        raise HarnessError("--fasttext-epochs must be 1 or more and --fasttext-lrs above 0")
    if len(set(args.seeds)) != len(args.seeds):
        raise HarnessError(f"--seeds {args.seeds} repeats a seed")
    args.work_dir = args.work_dir.resolve()
    args.out = args.out.resolve()
    data = load_dataset(args.dataset_dir, args.folds, args.work_dir)
    if args.train_rows:
        data = with_fewer_training_rows(data, args.train_rows, args.work_dir)
    jobs = plan_jobs(args, overrides, data)
    print(f"{data.name}: protocol {data.protocol}, {len(data.splits)} split(s); {len(jobs)} run(s) to do", flush=True)
    failures = _execute(jobs, args.jobs)
    print(write_summary(args.out), end="")
    if failures:
        print(f"error: {failures} run(s) failed; see the messages above", file=sys.stderr)
        return 1
    return 0


def _execute(jobs: list[Job], parallel: int) -> int:
    done = 0
    failures = 0
    lock = threading.Lock()
    failed: set[Path] = set()  # results files of configs that failed once

    def one(job: Job) -> None:
        nonlocal done, failures
        if job.results.path in failed:
            return
        try:
            measured = job.run()
        except Exception as err:
            with lock:
                failures += 1
                print(f"FAILED {job.label}: {err}", file=sys.stderr, flush=True)
                # the same config would most likely fail again: start no more of its runs (other configs go on)
                failed.add(job.results.path)
            return
        job.results.append({**job.row, **measured, "finished_utc": _now()})
        if "test_f1_macro" in measured:
            figures = (
                f"dev macro-F1 {100 * measured['dev_f1_macro']:.2f} test macro-F1 {100 * measured['test_f1_macro']:.2f}"
                f" micro-F1 {100 * measured.get('test_f1_micro', math.nan):.2f}"
            )
        else:
            figures = f"dev {100 * measured['dev_acc']:.2f} test {100 * measured['test_acc']:.2f}"
        with lock:
            done += 1
            print(
                f"[{done}/{len(jobs)}] {job.label}: {figures} fit {measured['fit_seconds']:.1f} s "
                f"({measured['epochs'] or '-'} epochs)",
                flush=True,
            )

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, job) for job in jobs]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.result()
    return failures


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (HarnessError, ml.MultiLabelDataError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
