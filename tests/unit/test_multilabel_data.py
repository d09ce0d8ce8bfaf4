"""Multi-label data: every format gives the same label sets, batches are multi-hot, bad label data gets one line."""

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textcls.data import DataError, TextDataModule
from textcls.data.labelsets import LabelSets, from_pairs

LABELS = ["anger", "joy", "sad", "zeal"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _rows(count, seed=0, allow_empty=True):
    """Texts whose words name their labels (so every row is distinct), 0-3 labels each."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        labels = sorted(rng.sample(LABELS, rng.randint(0 if allow_empty else 1, 3)))
        rows.append({"text": " ".join([f"row{i}", *labels]), "labels": labels})
    return rows


def _write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [f"text{sep}labels"] + [f"{r['text']}{sep}{'|'.join(r['labels'])}" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:  # fastText: every row needs a label there
        path.write_text("".join(" ".join(f"__label__{x}" for x in r["labels"]) + f" {r['text']}\n" for r in rows))
    return path


def _sets(dm, split):
    """{text: label set} of a split, read back through the batches (multi-hot -> names)."""
    dataset = dm.datasets[split]
    batch = dataset.__getitems__(list(range(len(dataset))))
    out = {}
    for ids, hot in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        words = [dm.tokenizer.vocab[i] for i in ids if i != dm.pad_id]
        out[words[0]] = {name for name, on in zip(dm.label_names, hot, strict=True) if on}
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "tsv", "fasttext"])
def test_every_format_gives_the_same_label_sets(tmp_path, fmt):
    rows = _rows(60, allow_empty=fmt != "fasttext")
    name = {"fasttext": "train.txt"}.get(fmt, f"train.{fmt}")
    kwargs = {"label_separator": "|"} if fmt in ("csv", "tsv") else {}
    column = "label" if fmt == "fasttext" else "labels"
    path = str(_write(tmp_path / name, rows, fmt))
    dm = TextDataModule(train_file=path, val_file=path, label_column=column, **kwargs)
    dm.setup("fit")
    assert dm.multi_label and dm.label_names == LABELS
    found = _sets(dm, "validation")
    assert _sets(dm, "train") == found == {r["text"].split()[0]: set(r["labels"]) for r in rows}
    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].dtype.is_floating_point and batch["labels"].shape[1] == len(LABELS)


def test_a_single_label_fasttext_file_stays_single_label(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("".join(f"__label__{'ab'[i % 2]} text {i}\n" for i in range(20)))
    dm = TextDataModule(train_file=str(path), val_fraction=0.25)
    dm.setup("fit")
    assert not dm.multi_label
    assert next(iter(dm.train_dataloader()))["labels"].dtype.is_floating_point is False


def test_multi_label_true_reads_a_text_label_as_a_set_of_one(tmp_path):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2] if i % 3 else ""} for i in range(30)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = TextDataModule(train_file=str(path), val_file=str(path), multi_label=True)
    dm.setup("fit")
    assert _sets(dm, "validation") == {r["text"]: {r["label"]} - {""} for r in rows}


def test_repeated_and_blank_labels_of_a_row_count_once(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,labels\none,a| a |\ntwo,b\nthree,\nfour,a|b\n")
    dm = TextDataModule(train_file=str(path), val_file=str(path), label_column="labels", label_separator="|")
    dm.setup("fit")
    assert _sets(dm, "train") == {"one": {"a"}, "two": {"b"}, "three": set(), "four": {"a", "b"}}
    counts, rows = dm.label_counts()
    assert counts.tolist() == [2, 2] and rows == 4


def test_a_carved_validation_split_gets_every_label(tmp_path):
    rows = _rows(200, seed=3)
    rows += [{"text": f"rare{i} zeal", "labels": ["rare"]} for i in range(10)]
    dm = TextDataModule(
        train_file=str(_write(tmp_path / "t.jsonl", rows, "jsonl")), label_column="labels", val_fraction=0.2
    )
    dm.setup("fit")
    val = dm.datasets["validation"]
    hot = val.__getitems__(list(range(len(val))))["labels"]
    assert len(val) == pytest.approx(42, abs=4)
    assert hot[:, dm.label_names.index("rare")].sum() == 2  # a fifth of the ten, as for every label
    assert (hot.sum(0) > 0).all()
    # seeded: the same split again
    again = TextDataModule(
        train_file=str(tmp_path / "t.jsonl"), label_column="labels", val_fraction=0.2, cache_dir=str(tmp_path / "c2")
    )
    again.setup("fit")
    assert again.datasets["validation"].__getitems__(list(range(len(val))))["labels"].tolist() == hot.tolist()


def test_label_order_and_state_round_trip(tmp_path):
    path = _write(tmp_path / "t.jsonl", _rows(40), "jsonl")
    order = ["zeal", "sad", "joy", "anger"]
    dm = TextDataModule(train_file=str(path), label_column="labels", label_order=order, val_fraction=0.25)
    dm.setup("fit")
    assert dm.label_names == order
    state = dm.state_dict()
    assert state["multi_label"] is True
    fresh = TextDataModule(train_file=str(path), label_column="labels")
    fresh.load_state_dict(state)
    assert fresh.multi_label and fresh.label_names == order


def test_label_sets_take_slice_and_strata():
    sets = from_pairs(np.array([0, 0, 2, 3, 3, 3]), np.array([1, 0, 2, 0, 1, 1]), 4)
    assert sets.offsets.tolist() == [0, 2, 2, 3, 5] and sets.values.tolist() == [0, 1, 2, 0, 1]
    assert sets[1:3].multi_hot(3).tolist() == [[0, 0, 0], [0, 0, 1]]
    assert sets[np.array([True, False, False, True])].values.tolist() == [0, 1, 0, 1]
    # label 2 is the rarest: row 2's stratum; row 1 has none (stratum 3); label 0 and 1 tie at 2 rows
    assert sets.strata(3).tolist()[1:3] == [3, 2]
    assert LabelSets.concat([sets[:1], sets[3:]]).values.tolist() == [0, 1, 0, 1]


def _error(tmp_path, lines, **kwargs):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    dm = TextDataModule(train_file=str(path), label_column="labels", val_fraction=0.5, **kwargs)
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    return str(err.value)


def test_a_list_of_numbers_is_refused(tmp_path):
    message = _error(tmp_path, [{"text": "a", "labels": [1, 2]}, {"text": "b", "labels": [3]}])
    assert "bad.jsonl" in message and "lists of int64" in message and "strings" in message


def test_a_null_label_list_names_the_row(tmp_path):
    message = _error(tmp_path, [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": None}])
    assert "row 2" in message and "write []" in message


def test_a_string_among_lists_names_the_line(tmp_path):
    message = _error(tmp_path, [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": "y"}])
    assert "line 2" in message


def test_multi_label_false_refuses_list_labels(tmp_path):
    message = _error(tmp_path, [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["y"]}], multi_label=False)
    assert "multi-label" in message and "--data.multi_label false" in message


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"label_separator": ""}, "label_separator"), ({"label_separator": "|", "multi_label": False}, "drop one")],
)
def test_bad_separator_settings_name_the_key(kwargs, words):
    with pytest.raises(DataError, match=words):
        TextDataModule(train_file="x.csv", **kwargs)


def test_a_test_label_never_trained_on_is_refused(tmp_path):
    train = _write(tmp_path / "t.jsonl", _rows(30), "jsonl")
    test = _write(tmp_path / "test.jsonl", [{"text": "q", "labels": ["joy", "new"]}], "jsonl")
    dm = TextDataModule(train_file=str(train), test_file=str(test), label_column="labels", val_fraction=0.2)
    with pytest.raises(DataError, match="never seen in the training data: 'new'"):
        dm.setup("test")


def test_single_label_text_refused_by_a_multi_label_model(tmp_path):
    train = _write(tmp_path / "t.jsonl", _rows(30), "jsonl")
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"text": "q", "labels": "joy"}) + "\n")
    dm = TextDataModule(train_file=str(train), test_file=str(test), label_column="labels", val_fraction=0.2)
    with pytest.raises(DataError, match="one label per row, but the model is multi-label"):
        dm.setup("test")


def test_a_hub_dataset_with_a_sequence_of_class_labels_is_multi_label(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "labels": datasets.Sequence(datasets.ClassLabel(names=LABELS))}
    )
    rows = _rows(40, seed=5)
    data = {"text": [r["text"] for r in rows], "labels": [[LABELS.index(x) for x in r["labels"]] for r in rows]}
    folder = tmp_path / "hubset"
    folder.mkdir()
    for split in ("train", "test"):
        datasets.Dataset.from_dict(data, features=features).to_parquet(str(folder / f"{split}.parquet"))
    dm = TextDataModule(dataset=str(folder), val_split="test", test_split="test", label_column="labels")
    assert dm.multi_label and dm.label_names == sorted({x for r in rows for x in r["labels"]})
    dm.setup("test")
    assert _sets(dm, "test") == {r["text"].split()[0]: set(r["labels"]) for r in rows}
