"""The tokenized-data cache: reused when nothing changed, rebuilt when anything did, never half-written."""

import multiprocessing
import os
import time

import pytest
from helpers import labelled_rows, write_rows

from textcls.data import DataError, TextDataModule
from textcls.data import build as build_module
from textcls.data.cache import get_or_build


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


def _slow_build(cache, marker_dir):
    def build(out):
        (marker_dir / f"built-by-{os.getpid()}").touch()
        time.sleep(0.5)
        (out / "meta.json").write_text("{}")

    return get_or_build(cache, "train-same-key", build)[0]


def test_concurrent_builders_of_one_key_build_once(tmp_path):
    cache, markers = tmp_path / "cache", tmp_path / "markers"
    markers.mkdir()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_slow_build, args=(cache, markers)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert len(list(markers.iterdir())) == 1
    assert _entries(cache) == ["train-same-key"]
