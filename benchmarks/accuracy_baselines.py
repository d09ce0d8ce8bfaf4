"""Baselines of the accuracy harness (benchmarks/accuracy.py) that are not textcls: TF-IDF + logistic regression
(scikit-learn, single- and multi-label) and fastText `-loss ova` (multi-label). Each returns the row's measured values.

TF-IDF: word uni- and bigrams, sublinear tf, scikit-learn's defaults otherwise; logistic regression with C=4 and
class_weight="balanced" (the anchor of issue 15), one-vs-rest (liblinear, one binary problem per label) for
multi-label. Fit seconds: vectorizer fit + classifier fit.

fastText ova: bigrams, one sigmoid per label; epoch and lr from FASTTEXT_OVA_GRID (or the grid the harness is given),
the point of best dev macro-F1 (after its thresholds are tuned on dev); fit seconds are the chosen point's
train_supervised.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import accuracy_multilabel as ml
import numpy as np

TFIDF = {"ngram_range": (1, 2), "sublinear_tf": True}
LR_C = 4.0
FASTTEXT_OVA_GRID = {"epoch": [5, 10, 20], "lr": [0.1, 0.25, 0.5, 1.0]}


def tfidf_multilabel(
    labels: list[str], splits: list[list[tuple[str, list[str]]]], seed: int, jobs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    train, dev, test = splits
    y = [ml.label_matrix(rows, labels) for rows in splits]
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(**TFIDF)  # type: ignore[arg-type]
    x_train = vectorizer.fit_transform([t for t, _ in train])
    lr = LogisticRegression(C=LR_C, class_weight="balanced", solver="liblinear", random_state=seed)
    with joblib.parallel_config(backend="threading"):  # liblinear drops the GIL: no worker processes to start
        model = OneVsRestClassifier(lr, n_jobs=jobs).fit(x_train, y[0])
    seconds = time.perf_counter() - start
    prob = [model.predict_proba(vectorizer.transform([t for t, _ in rows])) for rows in (dev, test)]
    row, params = ml.evaluate(labels, (prob[0], y[1]), (prob[1], y[2]))
    params |= {"C": LR_C, "features": len(vectorizer.vocabulary_), "jobs": jobs}
    return {**row, "fit_seconds": seconds, "epochs": "", "best_epoch": ""}, params


def tfidf_single_label(
    splits: list[list[tuple[str, str]]], seed: int
) -> tuple[list[str], list[str], dict[str, Any], float]:
    """Predictions on dev and test, the params and the fit seconds (the caller scores them like fastText's)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, dev, test = splits
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(**TFIDF)  # type: ignore[arg-type]
    x_train = vectorizer.fit_transform([text for _, text in train])
    model = LogisticRegression(C=LR_C, class_weight="balanced", max_iter=1000, random_state=seed)
    model.fit(x_train, [label for label, _ in train])
    seconds = time.perf_counter() - start
    dev_pred, test_pred = (model.predict(vectorizer.transform([t for _, t in rows])).tolist() for rows in (dev, test))
    return dev_pred, test_pred, {"C": LR_C, "features": len(vectorizer.vocabulary_)}, seconds


def _ft_token(label: str) -> str:
    return "".join(c if not c.isspace() else "_" for c in label)


def _ft_text(text: str) -> str:
    return " ".join(text.lower().split())


def _ova_train_file(rows: list[tuple[str, list[str]]], target: Path) -> Path:
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
        with tmp.open("w", encoding="utf-8") as f:
            for text, labels in rows:
                if labels:  # fastText skips a line without a label anyway
                    f.write(" ".join(f"__label__{_ft_token(x)}" for x in labels) + f" {_ft_text(text)}\n")
        tmp.replace(target)
    return target


def _ova_prob(model: Any, labels: list[str], rows: list[tuple[str, list[str]]]) -> np.ndarray:
    column = {f"__label__{_ft_token(x)}": j for j, x in enumerate(labels)}
    names, probs = model.predict([_ft_text(t) for t, _ in rows], k=-1, threshold=0.0)
    prob = np.zeros((len(rows), len(labels)))
    for r, (ns, ps) in enumerate(zip(names, probs, strict=True)):
        prob[r, [column[n] for n in ns]] = np.minimum(ps, 1.0)  # fastText adds 1e-5 before it reports
    return prob


def fasttext_ova(
    labels: list[str],
    splits: list[list[tuple[str, list[str]]]],
    seed: int,
    threads: int,
    train_file: Path,
    grid: dict[str, list[Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    import fasttext

    train, dev, test = splits
    path = _ova_train_file(train, train_file)
    y_dev, y_test = ml.label_matrix(dev, labels), ml.label_matrix(test, labels)
    best: tuple[float, Any, dict[str, Any], float] | None = None
    grid_start = time.perf_counter()
    diverged: list[str] = []
    grid_dev: dict[str, float] = {}  # dev macro-F1 of every grid point, to see whether the grid's edge binds
    for epoch in grid["epoch"]:
        for lr in grid["lr"]:
            start = time.perf_counter()
            try:
                model = fasttext.train_supervised(
                    input=str(path), loss="ova", wordNgrams=2, epoch=epoch, lr=lr, thread=threads, seed=seed, verbose=0
                )
            except RuntimeError as err:  # "Encountered NaN": see fasttext_run in accuracy.py
                if "NaN" not in str(err):
                    raise
                diverged.append(f"epoch={epoch},lr={lr}")
                continue
            seconds = time.perf_counter() - start
            dev_prob = _ova_prob(model, labels, dev)
            per_label, _ = ml.tune_thresholds(dev_prob, y_dev)
            dev_f1 = ml.scores(dev_prob, y_dev, per_label)["f1_macro"]
            grid_dev[f"epoch={epoch},lr={lr}"] = round(dev_f1, 4)
            if best is None or dev_f1 > best[0]:  # ties keep the earlier (cheaper) grid point
                best = (dev_f1, model, {"epoch": epoch, "lr": lr}, seconds)
    if best is None:
        raise RuntimeError(f"every fastText grid point diverged: {diverged}; try --fasttext-threads 10")
    _, model, chosen, seconds = best
    row, params = ml.evaluate(labels, (_ova_prob(model, labels, dev), y_dev), (_ova_prob(model, labels, test), y_test))
    params |= {
        **chosen,
        "wordNgrams": 2,
        "thread": threads,
        "grid_seconds": round(time.perf_counter() - grid_start, 2),
        "grid_dev_f1_macro": grid_dev,
    }
    return {**row, "fit_seconds": seconds, "epochs": chosen["epoch"], "best_epoch": ""}, params


def dumps(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)
