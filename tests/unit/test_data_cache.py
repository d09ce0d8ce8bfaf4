"""The tokenized-data cache: reused when nothing changed, rebuilt when anything did, never half-written."""

import os

import pytest
from helpers import labelled_rows, race_three_builders, write_rows

from textcls.data import DataError, TextDataModule
from textcls.data import build as build_module


def _entries(cache):
    return sorted(p.name for p in cache.iterdir() if p.is_dir())


def _setup(cache, **kwargs):
    dm = TextDataModule(cache_dir=str(cache), **kwargs)
    dm.setup("fit")
    return dm


def test_second_setup_reuses_the_entry_without_reading_the_file(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    train = write_rows(tmp_path / "t.csv", labelled_rows(50))
    first = _setup(cache, train_file=str(train))

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although nothing changed")

    monkeypatch.setattr("textcls.data.entries.build_train_entry", fail)
    second = _setup(cache, train_file=str(train))
    assert second.tokenizer.vocab == first.tokenizer.vocab and len(second.datasets["train"]) == len(
        first.datasets["train"]
    )
    assert len(_entries(cache)) == 1


def test_a_changed_file_or_setting_builds_a_new_entry(tmp_path):
    cache = tmp_path / "cache"
    train = write_rows(tmp_path / "t.csv", labelled_rows(50))
    _setup(cache, train_file=str(train))
    stat = train.stat()
    # Same size and same mtime, different content: only the content hash can tell.
    train.write_bytes(train.read_bytes().replace(b"great", b"grand"))
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert train.stat().st_size == stat.st_size
    dm = _setup(cache, train_file=str(train))
    assert "grand" in dm.tokenizer.vocab and len(_entries(cache)) == 2
    _setup(cache, train_file=str(train), max_length=3)
    _setup(cache, train_file=str(train), lowercase=False)
    assert len(_entries(cache)) == 4


def test_a_build_that_dies_half_way_leaves_nothing_trusted(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    train = str(write_rows(tmp_path / "t.csv", labelled_rows(50)))
    real_close = build_module._Writer.close

    def die(self):
        raise KeyboardInterrupt  # as if the run were killed while writing

    monkeypatch.setattr(build_module._Writer, "close", die)
    with pytest.raises(KeyboardInterrupt):
        _setup(cache, train_file=train)
    assert _entries(cache) == []
    monkeypatch.setattr(build_module._Writer, "close", real_close)
    rebuilt = _setup(cache, train_file=train)
    assert len(rebuilt.datasets["train"]) + len(rebuilt.datasets["validation"]) == 50


def test_bad_input_caches_nothing(tmp_path):
    cache = tmp_path / "cache"
    rows = [*labelled_rows(10), {"text": "no label here", "label": ""}]
    with pytest.raises(DataError, match="data row 11: the label is missing"):
        _setup(cache, train_file=str(write_rows(tmp_path / "t.csv", rows)))
    assert _entries(cache) == []


def test_concurrent_builders_of_one_key_build_once(tmp_path):
    cache, markers = tmp_path / "cache", tmp_path / "markers"
    markers.mkdir()
    assert race_three_builders(cache, markers) == [0, 0, 0]
    assert len(list(markers.iterdir())) == 1
    assert _entries(cache) == ["train-same-key"]
