"""Every local format and the hub path give the same rows; several text columns are joined."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import labelled_rows, write_rows

from textcls.data import DataError, TextDataModule


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _train_rows(dm):
    dm.setup("fit")
    train = dm.datasets["train"]
    return sorted(tuple(dm.tokenizer.vocab[i] for i in train.row(r)) for r in range(len(train)))


def _write(path, rows, fmt):
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "labeltext":
        path.write_text("".join(f"{r['label']} {r['text']}\n" for r in rows), encoding="utf-8")
    elif fmt == "fasttext":
        path.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in rows), encoding="utf-8")
    else:
        write_rows(path, rows)
    return path


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("t.csv", "csv"),
        ("t.tsv", "tsv"),
        ("t.jsonl", "jsonl"),
        ("t.parquet", "parquet"),
        ("t.txt", "labeltext"),
        ("t.txt", "fasttext"),
        ("t.ft", "fasttext"),
    ],
)
def test_every_format_gives_the_same_rows(tmp_path, name, fmt):
    rows = labelled_rows(40)
    reference = TextDataModule(train_file=str(write_rows(tmp_path / "ref.csv", rows)), val_fraction=0.25)
    other = TextDataModule(train_file=str(_write(tmp_path / name, rows, fmt)), val_fraction=0.25)
    assert other.label_names == reference.label_names == ["neg", "pos"]
    assert _train_rows(other) == _train_rows(reference)


def test_format_option_overrides_the_extension(tmp_path):
    path = tmp_path / "data.dat"
    _write(path, labelled_rows(20), "labeltext")
    with pytest.raises(DataError, match=r"--data\.format"):
        _ = TextDataModule(train_file=str(path)).vocab_size
    assert TextDataModule(train_file=str(path), format="labeltext").label_names == ["neg", "pos"]


def test_integer_labels_in_parquet_and_jsonl_keep_their_text(tmp_path):
    rows = [{"text": f"word{i % 3} text", "label": i % 3 * 5} for i in range(30)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("t.parquet", "t.jsonl"):
        assert TextDataModule(train_file=str(tmp_path / name)).label_names == ["0", "5", "10"]


def test_several_text_columns_are_joined(tmp_path):
    rows = [{"title": f"title{i % 2}", "body": f"body{i % 3}", "label": "ab"[i % 2]} for i in range(20)]
    dm = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", rows)), text_column=["title", "body"])
    dm.setup("fit")
    first = dm.datasets["train"].row(0)
    words = [dm.tokenizer.vocab[i] for i in first]
    assert words[0].startswith("title") and words[1].startswith("body")


def test_predict_txt_is_one_text_per_line_even_with_a_labelled_format(tmp_path):
    train = _write(tmp_path / "train.txt", labelled_rows(20), "labeltext")
    predict = tmp_path / "in.txt"
    predict.write_text("neg the film\n\npos great\n", encoding="utf-8")
    dm = TextDataModule(train_file=str(train), predict_file=str(predict), format="labeltext")
    dm.setup("predict")
    data = dm.datasets["predict"]
    assert len(data) == 3 and not data.has_labels  # the blank line stays: one prediction per input line
    # "neg" is read as a word of the text (the labels never enter the vocabulary), not as a label.
    assert [dm.tokenizer.vocab[i] for i in data.row(0)] == ["<unk>", "the", "film"]
    assert len(data.row(1)) == 0


def test_max_samples_take_seeded_subsets(tmp_path):
    train = write_rows(tmp_path / "t.csv", labelled_rows(200))
    dm = TextDataModule(train_file=str(train), max_train_samples=50, max_eval_samples=7)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 50 and len(dm.datasets["validation"]) == 7


def test_hub_path_reads_a_local_dataset_with_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = labelled_rows(40)
    data = {"text": [r["text"] for r in rows], "label": [int(r["label"] == "pos") for r in rows]}
    folder = tmp_path / "hubset"
    folder.mkdir()
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(folder / "train.parquet"))
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(folder / "test.parquet"))
    dm = TextDataModule(dataset=str(folder), test_split="test")
    assert dm.label_names == ["neg", "pos"]
    dm.setup("test")
    assert len(dm.datasets["test"]) == 40 and dm.has_test_data


def test_a_test_file_given_with_a_hub_dataset_takes_precedence(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = labelled_rows(40)
    folder = tmp_path / "hubset"
    folder.mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(folder / "train.parquet"))
    test = write_rows(tmp_path / "test.csv", labelled_rows(6))
    dm = TextDataModule(dataset=str(folder), test_split="train", test_file=str(test))
    dm.setup("test")
    assert len(dm.datasets["test"]) == 6
