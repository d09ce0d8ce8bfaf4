import numpy as np
import pytest
import torch
from helpers import labelled_rows, write_rows

from textcls.data import DataError, TextDataModule


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # The default cache lives under $XDG_CACHE_HOME; keep every test's entries to itself.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_reads_every_format_into_padded_batches(tmp_path, suffix):
    train = write_rows(tmp_path / f"train{suffix}", labelled_rows(60))
    dm = TextDataModule(train_file=str(train), batch_size=8)
    dm.setup("fit")
    assert dm.label_names == ["neg", "pos"]
    assert len(dm.datasets["train"]) + len(dm.datasets["validation"]) == 60
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].dtype == torch.int64 and batch["input_ids"].shape[0] == 8
    assert set(batch["labels"].tolist()) <= {0, 1}


def test_integer_labels_sort_numerically_and_keep_their_names(tmp_path):
    rows = [{"text": f"text {i} " + "word" * (i % 3), "label": str([2, 10, 1][i % 3])} for i in range(90)]
    dm = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", rows)))
    assert dm.label_names == ["1", "2", "10"]
    assert dm.num_classes == 3


def test_validation_split_is_stratified_and_seeded(tmp_path):
    train = str(write_rows(tmp_path / "t.csv", labelled_rows(200)))

    def val_ids(seed):
        dm = TextDataModule(train_file=train, val_fraction=0.2, split_seed=seed)
        dm.setup("fit")
        val = dm.datasets["validation"]
        return [val.row(i).tolist() for i in range(len(val))], val.labels

    first, labels = val_ids(1)
    again, _ = val_ids(1)
    other, _ = val_ids(2)
    assert first == again and first != other
    assert len(labels) == 40 and np.bincount(labels).tolist() == [20, 20]


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    train = write_rows(tmp_path / "train.csv", labelled_rows(40, prefix="trainonly "))
    val = write_rows(tmp_path / "val.csv", labelled_rows(20, prefix="valonly "))
    test = write_rows(tmp_path / "test.csv", labelled_rows(20, prefix="testonly "))
    dm = TextDataModule(train_file=str(train), val_file=str(val), test_file=str(test))
    dm.setup("fit")
    dm.setup("test")
    assert "trainonly" in dm.tokenizer.vocab
    assert "valonly" not in dm.tokenizer.vocab and "testonly" not in dm.tokenizer.vocab
    assert dm.datasets["validation"].row(0)[0] == dm.tokenizer.unk_id


def test_state_round_trip_restores_tokenizer_and_labels(tmp_path):
    dm = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", labelled_rows(30))))
    state = dm.state_dict()
    other = TextDataModule(tokenizer_file=None, train_file=str(tmp_path / "t.csv"))
    other.load_state_dict(state)
    assert other.tokenizer.vocab == dm.tokenizer.vocab and other.label_names == dm.label_names


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"max_length": 0}, "max_length"), ({"val_fraction": 1.5}, "val_fraction"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(DataError, match=f"--data.{key}"):
        TextDataModule(**kwargs)


def test_missing_column_lists_the_columns_found(tmp_path):
    path = write_rows(tmp_path / "t.csv", [{"review": "x", "label": "a"}, {"review": "y", "label": "b"}])
    with pytest.raises(DataError, match="columns found: review, label"):
        _ = TextDataModule(train_file=str(path)).vocab_size


def test_unseen_validation_label_is_an_error(tmp_path):
    train = write_rows(tmp_path / "train.csv", labelled_rows(20))
    val = write_rows(tmp_path / "val.csv", labelled_rows(4, labels=("neg", "neutral")))
    dm = TextDataModule(train_file=str(train), val_file=str(val))
    with pytest.raises(DataError, match="never seen in the training data: 'neutral'"):
        dm.setup("fit")


def test_blank_texts_are_dropped_with_a_warning_by_default(tmp_path):
    rows = [*labelled_rows(20), {"text": "   ", "label": "pos"}, {"text": "", "label": "neg"}]
    train = str(write_rows(tmp_path / "t.csv", rows))
    dm = TextDataModule(train_file=train, val_fraction=0.2)
    with pytest.warns(UserWarning, match="dropped 2 row"):
        dm.setup("fit")
    assert len(dm.datasets["train"]) + len(dm.datasets["validation"]) == 20
    with pytest.raises(DataError, match="data row 21: the text is empty"):
        TextDataModule(train_file=train, empty_text="error").setup("fit")


def test_label_order_sets_the_class_indices(tmp_path):
    # 50 positive, 30 negative, 10 neutral rows: the class counts show which index each label got
    labels = ["positive"] * 50 + ["negative"] * 30 + ["neutral"] * 10
    train = str(write_rows(tmp_path / "t.csv", [{"text": f"text {i}", "label": x} for i, x in enumerate(labels)]))
    default = TextDataModule(train_file=train, cache_dir=str(tmp_path / "c"))
    assert default.label_names == ["negative", "neutral", "positive"]
    ordered = TextDataModule(
        train_file=train, cache_dir=str(tmp_path / "c"), label_order=["positive", "neutral", "negative"]
    )
    assert ordered.label_names == ["positive", "neutral", "negative"]
    ordered.setup("fit")
    codes = np.concatenate([batch["labels"].numpy() for batch in ordered.train_dataloader()])
    assert np.bincount(codes).tolist() == [45, 9, 27]  # 90% of each class, in the given order


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (["negative", "positive"], "label\\(s\\) 'neutral' are missing from the given label order"),
        (["negative", "negative", "positive"], "--data.label_order"),
    ],
)
def test_label_order_must_name_every_training_label_once(tmp_path, order, message):
    rows = [{"text": f"text {i}", "label": ["neutral", "negative", "positive"][i % 3]} for i in range(90)]
    with pytest.raises(DataError, match=message):
        _ = TextDataModule(train_file=str(write_rows(tmp_path / "t.csv", rows)), label_order=order).num_classes


def test_the_training_order_follows_shuffle_seed_else_split_seed(tmp_path):
    """The CLI passes --seed_everything as shuffle_seed; unset, the order is a function of split_seed."""
    train = str(write_rows(tmp_path / "t.csv", labelled_rows(200)))

    def order(**kwargs):
        dm = TextDataModule(train_file=train, batch_size=4, **kwargs)
        dm.setup("fit")
        return [i for batch in dm.train_dataloader().batch_sampler for i in batch]

    assert order(split_seed=3) == order(split_seed=3, shuffle_seed=3)
    assert order(shuffle_seed=5) == order(shuffle_seed=5) != order(shuffle_seed=6)
    assert order(split_seed=3) != order(split_seed=3, shuffle_seed=4)
