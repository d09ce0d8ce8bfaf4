"""benchmarks/accuracy.py end to end: real subprocesses of the harness on small generated folders, a tiny TextCNN."""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import NEGATIVE, POSITIVE, labelled_rows, write_rows

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "benchmarks" / "accuracy.py"
sys.path.insert(0, str(HARNESS.parent))
import accuracy_multilabel as ml  # noqa: E402  (a script's sibling module, not a package)

CONFIG = str(ROOT / "configs" / "textcnn.yaml")
# A fastText grid of 4 points instead of the harness's 12-15: each point is a training (the tests check the harness).
SMALL_GRID = ["--fasttext-epochs", 10, 20, "--fasttext-lrs", 0.5, 1.0]
# One epoch of a small network: each training takes a few seconds, most of it interpreter and import start-up.
TINY = [
    "--trainer.max_epochs",
    "1",
    "--model.model.init_args.embedding_dim",
    "16",
    "--model.model.init_args.num_filters",
    "8",
    "--data.batch_size",
    "32",
]


def harness(*args: object, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HARNESS), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def label_text_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    """The harness's `label,text` order; an id word per row makes every text unique, so rows can be tracked."""
    return [{"label": r["label"], "text": f"{r['text']} id{start + i}"} for i, r in enumerate(labelled_rows(n))]


def dev_layout(folder: Path, n_train: int = 120, n_eval: int = 40) -> Path:
    write_rows(folder / "train.csv", label_text_rows(n_train))
    write_rows(folder / "dev.csv", label_text_rows(n_eval, start=n_train))
    write_rows(folder / "test.csv", label_text_rows(n_eval, start=n_train + n_eval))
    return folder


def pairs(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [(row["label"], row["text"]) for row in csv.DictReader(f)]


def results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def results_from_bytes(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(content.decode().splitlines()))


def only_split_dir(work: Path) -> Path:
    (split_dir,) = (work / "splits").iterdir()
    return split_dir


# Multi-label rows: each label has its own words, a row carries 0-2 labels (as support-ticket tags do).
TAG_WORDS = {"billing": ["invoice", "refund"], "bug": ["crash", "broken"], "praise": ["thanks", "love"]}


def multilabel_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tags = sorted(rng.sample(sorted(TAG_WORDS), rng.choice([0, 1, 1, 2])))
        words = ["the", "app", "today"] + [rng.choice(TAG_WORDS[t]) for t in tags]
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" id{seed}x{i}", "labels": tags})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def multilabel_layout(folder: Path, n_train: int = 240, n_eval: int = 60) -> Path:
    for part, n, seed in (("train", n_train, 0), ("dev", n_eval, 1), ("test", n_eval, 2)):
        write_jsonl(folder / f"{part}.jsonl", multilabel_rows(n, seed))
    return folder


def trained_configs(work: Path, dataset: str) -> list[dict]:
    """The config textcls itself saved in each kept run (--keep-runs): what each training really read."""
    return [yaml.safe_load(p.read_text()) for p in sorted((work / "runs" / dataset).glob("*/*/runs/*/*/config.yaml"))]


@pytest.mark.slow
def test_cross_validation_folds_partition_the_rows_and_do_not_change(tmp_path):
    data = tmp_path / "cvset"
    write_rows(data / "all.csv", label_text_rows(150))
    everything = sorted(pairs(data / "all.csv"))
    out, work = tmp_path / "out", tmp_path / "work"
    common = [data, "--config", CONFIG, "--folds", 3, "--seeds", 0, "--out", out]
    run = harness(*common, "--jobs", 2, "--work-dir", work, "--", *TINY)  # two folds at once: the test's wall time
    assert run.returncode == 0, run.stderr[-3000:]
    assert "protocol cv, 3 split(s); 3 run(s) to do" in run.stdout

    rows = results(out / "cvset" / "textcnn.csv")
    assert sorted(r["fold"] for r in rows) == ["0", "1", "2"]
    assert {(r["seed"], r["protocol"], r["n_folds"], r["config"]) for r in rows} == {("0", "cv", "3", "textcnn")}
    assert all(0 <= float(r["test_acc"]) <= 1 and 0 <= float(r["dev_acc"]) <= 1 for r in rows)

    split_dir = only_split_dir(work)
    test_folds = []
    for row in rows:
        parts = {p: pairs(split_dir / f"fold{row['fold']}" / f"{p}.csv") for p in ("train", "dev", "test")}
        assert sorted(parts["train"] + parts["dev"] + parts["test"]) == everything  # disjoint, nothing lost
        assert [len(rows_) for rows_ in parts.values()] == [int(row[f"n_{p}"]) for p in parts]
        test_folds.append(parts["test"])
    assert sorted(row for fold in test_folds for row in fold) == everything  # every row is tested exactly once
    for label in ("neg", "pos"):  # stratified: a class spreads over the folds within one row
        per_fold = [sum(lab == label for lab, _ in fold) for fold in test_folds]
        assert max(per_fold) - min(per_fold) <= 1, per_fold

    # A fresh work dir makes the splits again: the same files. The results are there already: nothing to train.
    again = harness(*common, "--work-dir", tmp_path / "work2", "--", *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 run(s) to do" in again.stdout
    remade = only_split_dir(tmp_path / "work2")
    assert remade.name == split_dir.name
    for file in sorted(split_dir.glob("fold*/*.csv")):
        assert (remade / file.relative_to(split_dir)).read_bytes() == file.read_bytes()

    summary = (out / "summary.md").read_text()
    (line,) = [x for x in summary.splitlines() if x.startswith("| cvset | textcnn | cv |")]
    assert line.split("|")[8:10] == [" 1 ", " 3 "]  # seeds, runs


@pytest.mark.slow
def test_holdout_dev_is_carved_from_train_stratified_and_not_trained_on(tmp_path):
    rng = random.Random(0)
    counts = {"neg": 120, "pos": 60, "meh": 20}  # unequal classes, so a stratified sample is told from a random one
    words = {"neg": NEGATIVE, "pos": POSITIVE, "meh": ["okay", "average", "so-so"]}
    train = [
        {"label": lab, "text": f"it was {rng.choice(words[lab])} id{i}"}
        for i, lab in enumerate(Counter(counts).elements())
    ]
    rng.shuffle(train)
    data = tmp_path / "holdout"
    write_rows(data / "train.csv", train)
    write_rows(
        data / "test.csv", [{"label": lab, "text": f"it was {words[lab][0]}"} for lab in counts for _ in range(10)]
    )
    work = tmp_path / "work"
    # A folder relative to the caller's cwd: the trainings run elsewhere (in the repository) and must still find it.
    run = harness(
        "holdout",
        "--config",
        CONFIG,
        "--seeds",
        3,
        "--out",
        "out",
        "--work-dir",
        work,
        "--keep-runs",
        "--",
        *TINY,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "protocol holdout, 1 split(s); 1 run(s) to do" in run.stdout

    split_dir = only_split_dir(work)
    carved_train, carved_dev = pairs(split_dir / "train.csv"), pairs(split_dir / "dev.csv")
    assert Counter(lab for lab, _ in carved_dev) == {"neg": 12, "pos": 6, "meh": 2}  # 10% of every class
    assert not set(carved_train) & set(carved_dev)
    assert sorted(carved_train + carved_dev) == sorted(pairs(data / "train.csv"))

    (config,) = trained_configs(work, "holdout")
    assert Path(config["data"]["train_file"]) == split_dir / "train.csv"
    assert Path(config["data"]["val_file"]) == split_dir / "dev.csv"
    assert Path(config["data"]["test_file"]) == data / "test.csv"
    (row,) = results(tmp_path / "out" / "holdout" / "textcnn.csv")
    assert [row[k] for k in ("protocol", "seed", "n_train", "n_dev", "n_test")] == ["holdout", "3", "180", "20", "30"]


@pytest.mark.slow
def test_rerun_skips_done_rows_and_refuses_other_overrides_unless_overwrite(tmp_path):
    data = dev_layout(tmp_path / "devset")
    out, work = tmp_path / "out", tmp_path / "work"
    common = [data, "--config", CONFIG, "--seeds", 0, "--out", out, "--work-dir", work, "--keep-runs"]
    first = harness(*common, "--", *TINY)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "1 run(s) to do" in first.stdout
    table = out / "devset" / "textcnn.csv"
    written = table.read_bytes()

    again = harness(*common, "--", *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 run(s) to do" in again.stdout
    assert table.read_bytes() == written

    two_epochs = [*TINY[:1], "2", *TINY[2:]]
    refused = harness(*common, "--", *two_epochs)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    (message,) = refused.stderr.strip().splitlines()
    assert message.startswith("error: ") and "--overwrite" in message
    assert table.read_bytes() == written

    replaced = harness(*common, "--overwrite", "--", *two_epochs)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "1 run(s) to do" in replaced.stdout
    (old,), (new,) = results_from_bytes(written), results(table)
    assert (old["epochs"], new["epochs"]) == ("1", "2")
    assert old["config_hash"] != new["config_hash"]
    # Each training had a run directory of its own (two invocations sharing --work-dir never share one).
    assert sorted(c["trainer"]["max_epochs"] for c in trained_configs(work, "devset")) == [1, 2]
    assert len(list((work / "runs" / "devset" / "textcnn").iterdir())) == 2


@pytest.mark.slow  # four `textcls --print_config` processes
def test_rows_stay_valid_when_a_config_changes_in_a_way_that_trains_nothing_else(tmp_path):
    import accuracy  # benchmarks/accuracy.py: the hash its results files are keyed by

    experiment, recipe = tmp_path / "experiment.yaml", tmp_path / "recipe.yaml"
    experiment.write_text((ROOT / "configs" / "textcnn.yaml").read_text())
    recipe.write_text("model:\n  optimizer:\n    init_args:\n      lr: 0.002\n")
    before = accuracy.config_hash([experiment, recipe], [], "protocol")
    text = experiment.read_text()
    assert "      lr: " in text
    # A comment and the experiment's own rate, which the recipe replaces: the same training, the same key.
    experiment.write_text("# a note\n" + text.replace("      lr: ", "      lr: 0.5  # was ", 1))
    assert accuracy.config_hash([experiment, recipe], [], "protocol") == before
    recipe.write_text("model:\n  optimizer:\n    init_args:\n      lr: 0.003\n")  # another training
    assert accuracy.config_hash([experiment, recipe], [], "protocol") != before
    with pytest.raises(accuracy.HarnessError, match="textcls cannot read the configs"):
        accuracy.config_hash([experiment], ["--model.optimizer.init_args.lrr=1"], "protocol")


def _missing(tmp_path: Path) -> tuple[Path, list[str]]:
    return tmp_path / "nowhere", []


def _no_layout(tmp_path: Path) -> tuple[Path, list[str]]:
    return write_rows(tmp_path / "odd" / "train.csv", label_text_rows(10)).parent, []


def _text_label_header(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = dev_layout(tmp_path / "swapped", 10, 10)
    write_rows(folder / "dev.csv", labelled_rows(10))  # columns text,label
    return folder, []


def _short_row(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "short"
    folder.mkdir()
    (folder / "all.csv").write_text("label,text\npos,fine film\nneg\n", encoding="utf-8")
    return folder, []


def _labels_not_a_list(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = multilabel_layout(tmp_path / "ml", 10, 10)
    write_jsonl(folder / "dev.jsonl", [*multilabel_rows(3, 1), {"text": "a refund", "labels": "billing"}])
    return folder, []


def _label_unseen_in_train(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = multilabel_layout(tmp_path / "ml", 30, 10)
    write_jsonl(folder / "test.jsonl", [*multilabel_rows(5, 2), {"text": "so slow", "labels": ["bug", "speed"]}])
    return folder, []


def _zero_epochs(tmp_path: Path) -> tuple[Path, list[str]]:
    return dev_layout(tmp_path / "ok", 10, 10), ["--fasttext-epochs", "5", "0"]


def _repeated_seed(tmp_path: Path) -> tuple[Path, list[str]]:
    return dev_layout(tmp_path / "ok", 10, 10), ["--seeds", "1", "2", "1"]


def _no_jobs(tmp_path: Path) -> tuple[Path, list[str]]:
    return dev_layout(tmp_path / "ok", 10, 10), ["--jobs", "0"]


def _more_train_rows_than_there_are(tmp_path: Path) -> tuple[Path, list[str]]:
    return dev_layout(tmp_path / "ok", 10, 10), ["--train-rows", "50"]


def test_fewer_training_rows_is_a_fixed_stratified_sample_of_the_same_split(tmp_path):
    import accuracy  # benchmarks/accuracy.py, in-process: only its split functions run here

    data = accuracy.load_dataset(dev_layout(tmp_path / "sst", 120, 40), 10, tmp_path / "work")
    small = accuracy.with_fewer_training_rows(data, 30, tmp_path / "work")
    again = accuracy.with_fewer_training_rows(data, 30, tmp_path / "other-work")
    (split,), (whole,) = small.splits, data.splits
    kept = pairs(split.train)
    assert small.name == f"{data.name}-train30" and split.sizes == (30, *whole.sizes[1:]) and len(kept) == 30
    assert Counter(label for label, _ in kept) == Counter({"neg": 15, "pos": 15}), "stratified"
    assert set(kept) <= set(pairs(whole.train)) and kept == pairs(again.splits[0].train), "a fixed sample"
    assert (split.dev, split.test) == (whole.dev, whole.test)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing, "does not exist"),
        (_no_layout, "no known layout"),
        (_text_label_header, "header 'label,text'"),
        (_short_row, "all.csv:3: expected 2 fields"),
        (_labels_not_a_list, "dev.jsonl:4: 'labels' must be a list of strings"),
        (_label_unseen_in_train, "test.jsonl: row 6 has label(s) ['speed'] that train.jsonl never has"),
        (_zero_epochs, "--fasttext-epochs must be 1 or more"),
        (_repeated_seed, "repeats a seed"),
        (_no_jobs, "--jobs must be 1 or more"),
        (_more_train_rows_than_there_are, "--train-rows 50: the training split has only 10 rows"),
    ],
    ids=[
        "missing-folder",
        "no-layout",
        "text-label-header",
        "short-row",
        "labels-not-a-list",
        "label-unseen-in-train",
        "fasttext-epochs-0",
        "repeated-seed",
        "jobs-0",
        "train-rows-50-of-10",
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, make, expected):
    folder, extra = make(tmp_path)
    out, work = tmp_path / "out", tmp_path / "work"
    run = harness(folder, "--config", CONFIG, "--out", out, "--work-dir", work, *extra, "--", *TINY, timeout=60)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    (message,) = run.stderr.strip().splitlines()
    assert message.startswith("error: ") and expected in message, message
    assert not out.exists() and not work.exists()


@pytest.mark.slow
def test_fasttext_unigrams_and_bigrams_side_by_side(tmp_path):
    pytest.importorskip("fasttext")
    data = dev_layout(tmp_path / "ftset", n_train=300, n_eval=60)
    out = tmp_path / "out"
    # fastText 0.9 initializes only thread/10 of its input matrix (facebookresearch/fastText#1061): with fewer than
    # 10 threads the rest is leftover memory, and on data this small unigram training then fails with "Encountered
    # NaN" at random. Ten threads initialize all of it, so this test checks the harness, not that bug.
    run = harness(
        data,
        "--fasttext",
        "--fasttext-threads",
        10,
        *SMALL_GRID,
        "--seeds",
        0,
        "--out",
        out,
        "--work-dir",
        tmp_path / "work",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 run(s) to do" in run.stdout
    for stem, ngrams in (("fasttext_unigram", 1), ("fasttext_bigram", 2)):
        (row,) = results(out / "ftset" / f"{stem}.csv")
        assert (row["config"], row["protocol"], row["seed"], row["n_test"]) == (stem, "dev", "0", "60")
        assert 0 <= float(row["dev_acc"]) <= 1 and 0 <= float(row["test_f1"]) <= 1
        assert 0.75 < float(row["test_acc"]) <= 1, row  # chance is 0.5; one word decides the label
        params = json.loads(row["params"])
        assert (params["wordNgrams"], params["thread"]) == (ngrams, 10)
        assert params["epoch"] in (10, 20) and params["lr"] in (0.5, 1.0), params  # from the grid it was given
        assert f"| ftset | {stem} | dev |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_multilabel_baselines_rows_and_summary_side_by_side(tmp_path):
    pytest.importorskip("fasttext")
    pytest.importorskip("sklearn")
    data = multilabel_layout(tmp_path / "mlset")
    out = tmp_path / "out"
    # Ten fastText threads for the reason given in test_fasttext_unigrams_and_bigrams_side_by_side.
    args = [data, "--tfidf", "--fasttext", "--fasttext-threads", 10, *SMALL_GRID, "--seeds", 0, "--out", out]
    run = harness(*args, "--work-dir", tmp_path / "work")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "protocol multilabel, 1 split(s); 2 run(s) to do" in run.stdout
    summary = (out / "summary.md").read_text()
    for stem in ("tfidf_lr", "fasttext_ova_bigram"):
        (row,) = results(out / "mlset" / f"{stem}.csv")
        assert (row["config"], row["protocol"], row["seed"], row["n_test"], row["n_labels"]) == (
            stem,
            "multilabel",
            "0",
            "60",
            "3",
        )
        # One word decides each label: a sound baseline with thresholds from dev gets nearly all of them.
        assert float(row["test_f1_macro"]) > 0.9 and float(row["test_f1_micro"]) > 0.9, row
        assert float(row["test_map"]) > 0.9 and float(row["test_hamming"]) < 0.1, row
        assert 0 <= float(row["test_subset_acc"]) <= 1 and 0 <= float(row["dev_f1_macro"]) <= 1
        params = json.loads(row["params"])
        assert sorted(params["thresholds"]) == sorted(TAG_WORDS)
        assert all(0 < t < 1 for t in params["thresholds"].values())
        if stem == "fasttext_ova_bigram":
            assert sorted(params["grid_dev_f1_macro"]) == [f"epoch={e},lr={lr}" for e in (10, 20) for lr in (0.5, 1.0)]
        (line,) = [x for x in summary.splitlines() if x.startswith(f"| mlset | {stem} | multilabel |")]
        assert "per-label, on dev" in line
    assert "| test macro-F1 % (mean ± std over seeds) | test micro-F1 % |" in summary

    again = harness(*args, "--work-dir", tmp_path / "work")  # every row is there: nothing to train
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 run(s) to do" in again.stdout


@pytest.mark.slow
def test_tfidf_logistic_regression_on_single_label_data(tmp_path):
    pytest.importorskip("sklearn")
    data = dev_layout(tmp_path / "lrset", n_train=200, n_eval=50)
    out = tmp_path / "out"
    run = harness(data, "--tfidf", "--seeds", 0, "--out", out, "--work-dir", tmp_path / "work")
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = results(out / "lrset" / "tfidf_lr.csv")
    assert (row["config"], row["protocol"], row["n_train"], row["n_test"]) == ("tfidf_lr", "dev", "200", "50")
    assert 0.75 < float(row["test_acc"]) <= 1 and 0 <= float(row["test_f1"]) <= 1, row  # chance is 0.5
    assert json.loads(row["params"])["C"] == 4
    assert "| lrset | tfidf_lr | dev |" in (out / "summary.md").read_text()


def _plain_f1(gold: list[bool], pred: list[bool]) -> float:
    tp = sum(g and p for g, p in zip(gold, pred, strict=True))
    wrong = sum(g != p for g, p in zip(gold, pred, strict=True))
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def _plain_ap(scores: list[float], gold: list[bool]) -> float:
    """Mean over the positives of the precision among rows scored at least as high (ties count together)."""
    return sum(
        sum(g2 for s2, g2 in zip(scores, gold, strict=True) if s2 >= s) / sum(s2 >= s for s2 in scores)
        for s, g in zip(scores, gold, strict=True)
        if g
    ) / sum(gold)


def test_multilabel_metrics_and_threshold_search_match_plain_python():
    rng = random.Random(7)
    for _ in range(25):
        n, n_labels = rng.randint(4, 30), rng.randint(2, 4)
        gold = np.array([[rng.random() < 0.35 for _ in range(n_labels)] for _ in range(n)])
        prob = np.array([[round(rng.random(), 1) for _ in range(n_labels)] for _ in range(n)])  # with ties
        per_label, global_t = ml.tune_thresholds(prob, gold)
        columns = [(prob[:, j].tolist(), gold[:, j].tolist()) for j in range(n_labels)]
        for j, (p, g) in enumerate(columns):  # brute force: no grid point beats the chosen one
            best = max(_plain_f1(g, [x >= t for x in p]) for t in ml.THRESHOLD_GRID)
            assert _plain_f1(g, [x >= per_label[j] for x in p]) == pytest.approx(best)
        macro_at = {t: sum(_plain_f1(g, [x >= t for x in p]) for p, g in columns) / n_labels for t in ml.THRESHOLD_GRID}
        assert macro_at[global_t] == pytest.approx(max(macro_at.values()))

        thresholds = per_label
        got = ml.scores(prob, gold, thresholds)
        pred = [[prob[i, j] >= thresholds[j] for j in range(n_labels)] for i in range(n)]
        f1s = [_plain_f1(g, [row[j] for row in pred]) for j, (_, g) in enumerate(columns)]
        assert got["f1_macro"] == pytest.approx(sum(f1s) / n_labels)
        flat_gold = [x for row in gold.tolist() for x in row]
        flat_pred = [x for row in pred for x in row]
        assert got["f1_micro"] == pytest.approx(_plain_f1(flat_gold, flat_pred))
        assert got["subset_acc"] == pytest.approx(sum(g == p for g, p in zip(gold.tolist(), pred, strict=True)) / n)
        wrong = sum(g != p for g, p in zip(flat_gold, flat_pred, strict=True))
        assert got["hamming"] == pytest.approx(wrong / (n * n_labels))
        aps = [_plain_ap(p, g) for p, g in columns if any(g)]
        assert got["map"] == pytest.approx(sum(aps) / len(aps) if aps else 0.0)
    # A label absent from dev ties at every grid point and keeps 0.5.
    assert ml.tune_thresholds(np.array([[0.9], [0.2]]), np.array([[False], [False]]))[0].tolist() == [0.5]


def _textcls_has_multi_label() -> bool:
    """Whether TextDataModule takes `multi_label`, read from its source (importing it would import torch)."""
    spec = importlib.util.find_spec("textcls.data.datamodule")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    (module,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TextDataModule"]
    (init,) = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    return "multi_label" in [a.arg for a in init.args.args + init.args.kwonlyargs]


@pytest.mark.slow
def test_multilabel_textcls_run_reports_the_multilabel_test_metrics(tmp_path):
    if not _textcls_has_multi_label():
        pytest.skip("textcls has no multi-label data yet (issue 15)")
    data = multilabel_layout(tmp_path / "mlset")
    out, work = tmp_path / "out", tmp_path / "work"
    run = harness(data, "--config", CONFIG, "--seeds", 0, "--out", out, "--work-dir", work, "--keep-runs", "--", *TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = results(out / "mlset" / "textcnn.csv")
    assert (row["protocol"], row["n_train"], row["n_test"]) == ("multilabel", "240", "60")
    for field in ("dev_f1_macro", "test_f1_macro", "test_f1_micro", "test_map", "test_subset_acc", "test_hamming"):
        assert 0 <= float(row[field]) <= 1, (field, row)
    (config,) = trained_configs(work, "mlset")
    assert config["data"]["label_column"] == "labels"
    assert Path(config["data"]["test_file"]) == data / "test.jsonl"
    assert "| mlset | textcnn | multilabel |" in (out / "summary.md").read_text()
