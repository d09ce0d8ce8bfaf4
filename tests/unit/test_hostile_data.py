"""Hostile data files through the data layer: each is read correctly or refused with one line that names the file (and
the line, where there is one), and nothing is cached for it. Then damaged cache entries (rebuilt with one warning,
never read) and file-system faults under the cache (one error naming the path, nothing half-written).

The corpus is a table of small files made in tmp_path; add a case whenever a new kind of bad input turns up.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import labelled_rows, race_three_builders, slow_build

from textcls.data import DataError, TextDataModule
from textcls.data.cache import MANIFEST, entry_damage

ROWS = labelled_rows(400)
CSV_LINES = [f"{r['text']},{r['label']}\n" for r in ROWS]
CSV = "text,label\n" + "".join(CSV_LINES)
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS)
FASTTEXT = "".join(f"__label__{r['label']} {r['text']}\n" for r in ROWS)


def _csv_with(line: int, text: str) -> str:
    """CSV whose physical line `line` (1 = header) is `text`."""
    lines = ["text,label\n", *CSV_LINES]
    lines.insert(line - 1, text)
    return "".join(lines)


def _csv_edited(lines: dict[int, str]) -> str:
    """CSV whose physical lines (1 = header) in `lines` are replaced."""
    edited = ["text,label\n", *CSV_LINES]
    for number, text in lines.items():
        edited[number - 1] = text
    return "".join(edited)


def _jsonl_with(line: int, raw: bytes) -> bytes:
    lines = [json.dumps(r).encode() + b"\n" for r in ROWS]
    lines.insert(line - 1, raw)
    return b"".join(lines)


def _parquet(table: pa.Table) -> Callable[[Path], None]:
    return lambda path: pq.write_table(table, path)


def _zstd(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(data)

    return write


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _truncated_parquet(path: Path) -> None:
    pq.write_table(pa.table({"text": ["a b"] * 500, "label": ["x", "y"] * 250}), path)
    path.write_bytes(path.read_bytes()[:300])


def _invalid_utf8_strings() -> pa.Table:
    raw = pa.array([b"fine text", b"caf\xe9"] * 10, pa.binary())
    return pa.table({"text": raw.view(pa.string()), "label": ["a", "b"] * 10})


BIG_CSV = "text,label\n" + "".join(CSV_LINES * 30)  # ~1 MB: past the first-bytes sample and the first read block
MULTILINE = "text,label\n" + "".join(f'"first {r["text"]}\nsecond line",{r["label"]}\n' for r in ROWS)

# name -> (file name, content or writer, expected): expected is the number of rows read, or the substrings the one
# error line must hold besides the file's path.
CORPUS: dict[str, tuple[str, bytes | str | Callable[[Path], None], int | tuple[str, ...]]] = {
    # ----- valid files that must read -----
    "csv": ("t.csv", CSV, 400),
    "csv-bom": ("t.csv", "\ufeff" + CSV, 400),
    "csv-crlf": ("t.csv", CSV.replace("\n", "\r\n"), 400),
    "csv-cr-only": ("t.csv", CSV.replace("\n", "\r"), 400),
    "csv-no-final-newline": ("t.csv", CSV.rstrip("\n"), 400),
    "csv-trailing-blank-lines": ("t.csv", CSV + "\n\n\n", 400),
    "csv-multiline-fields": ("t.csv", MULTILINE, 400),
    "csv-multiline-crlf": ("t.csv", MULTILINE.replace("\n", "\r\n"), 400),
    "csv-quote-then-text-on-one-line": ("t.csv", _csv_with(50, '"a quoted"part,pos\n'), 401),
    "csv-doubled-quotes": ("t.csv", _csv_with(50, '"she said ""hi"", twice",pos\n'), 401),
    "csv-huge-field": ("t.csv", _csv_with(3, "enormous " + "word " * 500_000 + ",pos\n"), 401),
    "csv-integer-labels": ("t.csv", "text,label\n" + "".join(f"word{i % 3},{i % 2}\n" for i in range(40)), 40),
    "csv-gz": ("t.csv.gz", gzip.compress(CSV.encode()), 400),
    "csv-bz2": ("t.csv.bz2", bz2.compress(CSV.encode()), 400),
    "csv-zst": ("t.csv.zst", _zstd(CSV.encode()), 400),
    "tsv-with-lone-quotes": (
        "t.tsv",
        "text\tlabel\n" + "".join(f'a 5" {r["text"]}\t{r["label"]}\n' for r in ROWS),
        400,
    ),
    "jsonl": ("t.jsonl", JSONL, 400),
    "jsonl-bom": ("t.jsonl", "\ufeff" + JSONL, 400),
    "jsonl-blank-lines": ("t.jsonl", JSONL.replace("\n", "\n\n"), 400),
    "jsonl-numeric-text": (
        "t.jsonl",
        "".join(json.dumps({"text": i, "label": "ab"[i % 2]}) + "\n" for i in range(40)),
        40,
    ),
    "jsonl-unused-nested-column": ("t.jsonl", "".join(json.dumps({**r, "meta": {"a": [1]}}) + "\n" for r in ROWS), 400),
    "jsonl-brackets-in-text": (
        "t.jsonl",
        "".join(json.dumps({"text": "[" * 3000 + r["text"], "label": r["label"]}) + "\n" for r in ROWS[:40]),
        40,
    ),
    "jsonl-gz": ("t.jsonl.gz", gzip.compress(JSONL.encode()), 400),
    # pyarrow fixes a stream's schema after its first 1 MB block
    "jsonl-key-first-seen-after-1mb": ("t.jsonl", JSONL * 50 + json.dumps({**ROWS[0], "new": "x"}) + "\n", 20_001),
    "jsonl-null-throughout-first-1mb": (
        "t.jsonl",
        "".join(json.dumps({**r, "note": None}) + "\n" for r in ROWS * 50)
        + json.dumps({**ROWS[0], "note": "n"})
        + "\n",
        20_001,
    ),
    "jsonl-date-like-text": (
        "t.jsonl",
        "".join(json.dumps({"text": f"2020-01-0{i % 9 + 1}", "label": r["label"]}) + "\n" for i, r in enumerate(ROWS)),
        400,
    ),
    "fasttext-gz": ("t.txt.gz", gzip.compress(FASTTEXT.encode()), 400),
    "fasttext-bom": ("t.txt", "\ufeff" + FASTTEXT, 400),
    "labeltext-bom": ("t.txt", "\ufeff" + "".join(f"{r['label']} {r['text']}\n" for r in ROWS), 400),
    "parquet-float-labels": (
        "t.parquet",
        _parquet(pa.table({"text": ["a b", "c d"] * 10, "label": [1.5, 2.5] * 10})),
        20,
    ),
    # ----- empty or nearly -----
    "empty": ("t.csv", "", ("is empty",)),
    "header-only": ("t.csv", "text,label\n", ("no data rows",)),
    "header-only-crlf": ("t.csv", "text,label\r\n", ("no data rows",)),
    "blank-lines-only": ("t.csv", "\n\n\n", ("no header line",)),
    "jsonl-blank-lines-only": ("t.jsonl", "\n\n", ()),
    "parquet-no-rows": (
        "t.parquet",
        _parquet(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())})),
        ("no data rows",),
    ),
    # ----- not text at all -----
    "random-bytes": ("t.csv", os.urandom(4096), ("binary data",)),
    "gzip-named-csv": ("t.csv", gzip.compress(CSV.encode()), ("gzip-compressed", "t.csv.gz")),
    "bz2-named-csv": ("t.csv", bz2.compress(CSV.encode()), ("bz2-compressed", ".bz2")),
    "zstd-named-jsonl": ("t.jsonl", _zstd(JSONL.encode()), ("zstd-compressed", ".zst")),
    "xz-named-csv": ("t.csv", lzma.compress(CSV.encode()), ("xz-compressed", "decompress")),
    "plain-named-gz": ("t.csv.gz", CSV, ("does not hold gzip",)),
    "truncated-gz": ("t.csv.gz", gzip.compress(os.urandom(200_000).hex().encode())[:50_000], ("truncated",)),
    "truncated-jsonl-gz": ("t.jsonl.gz", gzip.compress(JSONL.encode() * 40)[:3_000], ("truncated",)),
    "parquet-named-csv": ("t.csv", _parquet(pa.table({"text": ["a"], "label": ["b"]})), ("Parquet file",)),
    "zip-named-csv": ("t.csv", b"PK\x03\x04" + os.urandom(300), ("ZIP archive",)),
    "pdf-named-txt": ("t.txt", b"%PDF-1.4\n" + os.urandom(300), ("PDF",)),
    "utf16-bom": ("t.csv", CSV.encode("utf-16"), ("UTF-16",)),
    "utf16-no-bom": ("t.csv", CSV.encode("utf-16-le"), ("UTF-16",)),
    "utf32-bom": ("t.jsonl", JSONL.encode("utf-32"), ("UTF-32",)),
    "text-named-parquet": ("t.parquet", CSV, ("could not be read as Parquet",)),
    "truncated-parquet": ("t.parquet", _truncated_parquet, ("could not be read as Parquet",)),
    # ----- encodings and bytes -----
    "latin1-line": ("t.csv", _csv_with(42, "na\xefve film,pos\n").encode("latin-1"), ("line 42", "not UTF-8")),
    "latin1-after-sample": (
        "t.csv",
        (BIG_CSV + "na\xefve film,pos\n").encode("latin-1"),
        (f"line {BIG_CSV.count(chr(10)) + 1}", "not UTF-8"),
    ),
    "latin1-in-header": ("t.csv", "t\xe9xt,label\nfine,pos\n".encode("latin-1"), ("line 1", "not UTF-8")),
    "nul-in-text": ("t.csv", _csv_with(5, "a\x00b,pos\n"), ("line 5", "NUL")),
    "nul-after-sample": ("t.csv", BIG_CSV + "a\x00b,pos\n", (f"line {BIG_CSV.count(chr(10)) + 1}", "NUL")),
    "binary-after-sample": ("t.csv", BIG_CSV.encode() + os.urandom(3000), ("line",)),
    "fasttext-nul": ("t.txt", FASTTEXT + "__label__pos a\x00b\n", ("line 401", "NUL")),
    "fasttext-latin1": ("t.txt", (FASTTEXT + "__label__pos na\xefve\n").encode("latin-1"), ("line 401", "not UTF-8")),
    "jsonl-invalid-utf8-text": (
        "t.jsonl",
        _jsonl_with(7, b'{"text": "caf\xe9", "label": "pos"}\n'),
        ("line 7", "not UTF-8"),
    ),
    "jsonl-invalid-utf8-label-late": (
        "t.jsonl",
        JSONL.encode() * 20 + b'{"text": "x", "label": "p\xf6s"}\n',
        ("line 8001", "not UTF-8"),
    ),
    "parquet-invalid-utf8": ("t.parquet", _parquet(_invalid_utf8_strings()), ("row 2", "not UTF-8")),
    # ----- CSV structure -----
    "unclosed-quote-to-eof-text-first": ("t.csv", _csv_with(101, '"oops,pos\n'), ("line 101", "never closed")),
    "unclosed-quote-to-eof-label-last": (
        "t.csv",
        "label,text\n"
        + "".join(f"{r['label']},{r['text']}\n" for r in ROWS[:99])
        + 'pos,"oops\n'
        + "".join(f"{r['label']},{r['text']}\n" for r in ROWS[99:]),
        ("line 101", "never closed"),
    ),
    "unclosed-quote-closed-lines-later": (
        "t.csv",
        _csv_edited({101: '"oops ' + CSV_LINES[99], 300: 'he said "hi" there,pos\n'}),
        ("line 101", "line 300"),
    ),
    "ragged-row": ("t.csv", _csv_with(3, "b, film,neg\n"), ("line 3", "expected 2 columns, found 3")),
    "too-few-fields": ("t.csv", _csv_with(7, "only one field\n"), ("line 7", "expected 2 columns, found 1")),
    "ragged-after-multiline": (
        "t.csv",
        "text,label\n" + "".join(f'"a\nb\nc {i}",{"ab"[i % 2]}\n' for i in range(300)) + "x,y,z\n",
        ("line 902", "expected 2 columns, found 3"),
    ),
    "ragged-late-in-big-file": ("t.csv", BIG_CSV + "x,y,z\n", (f"line {BIG_CSV.count(chr(10)) + 1}", "found 3")),
    "duplicate-header": (
        "t.csv",
        "label,text,text\n" + "".join(f"{r['label']},{r['text']},x\n" for r in ROWS),
        ("'text'", "2 times"),
    ),
    "empty-header-names": ("t.csv", ",\n" + "".join(CSV_LINES), ("''", "2 times")),
    "semicolon-delimited": ("t.csv", CSV.replace(",", ";"), ("no text column", "semicolons")),
    "tab-delimited-named-csv": ("t.csv", CSV.replace(",", "\t"), ("no text column", "tabs")),
    "no-header": ("t.csv", "".join(CSV_LINES), ("no text column",)),
    "no-label-column": ("t.csv", "text\n" + "".join(f"{r['text']}\n" for r in ROWS), ("no label column",)),
    "missing-label": ("t.csv", _csv_with(12, "no label here,\n"), ("data row 11", "label is missing")),
    "one-class": ("t.csv", "text,label\n" + "".join(f"{r['text']},same\n" for r in ROWS), ("only one class",)),
    "tsv-ragged": ("t.tsv", "text\tlabel\n" + "a\tb\n" * 5 + "a\tb\tc\n", ("line 7", "found 3")),
    # ----- JSON Lines structure -----
    "json-array": ("t.jsonl", json.dumps(ROWS[:20]), ("line 1", "JSON array", "JSON Lines")),
    "json-pretty": ("t.json", json.dumps(ROWS[:5], indent=2), ("line 1", "pretty-printed")),
    "jsonl-not-object": ("t.jsonl", _jsonl_with(2, b"[1, 2]\n"), ("line 2", "not an object")),
    "jsonl-scalar": ("t.jsonl", _jsonl_with(9, b'"just a string"\n'), ("line 9", "not an object")),
    "jsonl-invalid-json": ("t.jsonl", _jsonl_with(3, b"{text: no quotes}\n"), ("line 3", "not valid JSON")),
    "jsonl-truncated-last-line": ("t.jsonl", JSONL + '{"text": "cut', ("line 401", "not valid JSON")),
    "jsonl-raw-nul": ("t.jsonl", _jsonl_with(4, b'{"text": "a\x00b", "label": "pos"}\n'), ("line 4", "NUL")),
    "jsonl-null-label": (
        "t.jsonl",
        _jsonl_with(11, b'{"text": "a", "label": null}\n'),
        ("data row 11", "label is missing"),
    ),
    "jsonl-missing-label-key": ("t.jsonl", _jsonl_with(11, b'{"text": "a"}\n'), ("data row 11", "label is missing")),
    "jsonl-no-text-key": (
        "t.jsonl",
        "".join(json.dumps({"body": r["text"], "label": r["label"]}) + "\n" for r in ROWS),
        ("no text column 'text'",),
    ),
    "jsonl-text-object": ("t.jsonl", _jsonl_with(11, b'{"text": {"a": 1}, "label": "pos"}\n'), ("line 11", "object")),
    "jsonl-label-changes-type": (
        "t.jsonl",
        _jsonl_with(2, b'{"text": "a", "label": 1}\n'),
        ("line 2", "'label'", "number"),
    ),
    "jsonl-list-text-everywhere": (
        "t.jsonl",
        "".join(json.dumps({"text": [r["text"]], "label": r["label"]}) + "\n" for r in ROWS),
        ("'text'", "not text"),
    ),
    "jsonl-duplicate-key": (
        "t.jsonl",
        _jsonl_with(5, b'{"text": "a", "text": "b", "label": "pos"}\n'),
        ("line 5", "appears twice"),
    ),
    "jsonl-deep-nesting": (
        "t.jsonl",
        _jsonl_with(2, b'{"text": ' + b"[" * 30_000 + b"]" * 30_000 + b', "label": "x"}\n'),
        ("line 2", "nested"),
    ),
    # ----- Parquet structure -----
    "parquet-list-text": (
        "t.parquet",
        _parquet(pa.table({"text": pa.array([[1, 2]] * 20), "label": ["a", "b"] * 10})),
        ("'text'", "list"),
    ),
    "parquet-struct-label": (
        "t.parquet",
        _parquet(pa.table({"text": ["a"] * 20, "label": pa.array([{"x": 1}] * 20)})),
        ("'label'", "struct"),
    ),
    "parquet-binary-not-utf8": (
        "t.parquet",
        _parquet(pa.table({"text": pa.array([b"\xff\xfe"] * 20), "label": ["a", "b"] * 10})),
        ("'text'", "binary"),
    ),
    "parquet-duplicate-columns": (
        "t.parquet",
        _parquet(
            pa.Table.from_arrays(
                [pa.array(["a"] * 4), pa.array(["b"] * 4), pa.array(["x", "y"] * 2)], names=["text", "text", "label"]
            )
        ),
        ("'text'", "2 times"),
    ),
    # ----- line formats -----
    "fasttext-missing-prefix": (
        "t.txt",
        "__label__pos good film\nbad film\n__label__neg awful\n",
        ("line 2", "__label__"),
    ),
    # ----- not a regular file -----
    "fifo": ("t.csv", _fifo, ("not a regular file",)),
}


def _write(tmp_path: Path, name: str, content: bytes | str | Callable[[Path], None]) -> Path:
    path = tmp_path / name
    if callable(content):
        content(path)
    elif isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def _trusted_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*") if p.is_dir() and ".tmp-" not in p.name) if cache.exists() else []


def _fit_data(cache: Path, **kwargs) -> TextDataModule:
    dm = TextDataModule(cache_dir=str(cache), **kwargs)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_hostile_training_file_reads_correctly_or_fails_in_one_line(tmp_path, case):
    name, content, expected = CORPUS[case]
    path = _write(tmp_path, name, content)
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "dropped N empty rows" and the like are not what this test is about
        if isinstance(expected, int):
            dm = _fit_data(cache, train_file=str(path))
            assert len(dm.datasets["train"]) + len(dm.datasets["validation"]) == expected
            assert all(n == n.strip() and "\ufeff" not in n and "\n" not in n for n in dm.label_names), dm.label_names
            if not any(word in case for word in ("integer", "float", "numeric")):
                assert dm.label_names == ["neg", "pos"], dm.label_names
            return
        with pytest.raises(DataError) as caught:
            _fit_data(cache, train_file=str(path))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 700, message
    assert str(path) in message, message
    for part in expected:
        assert part in message, message
    assert _trusted_entries(cache) == [], "a refused file must not leave a cache entry"


def test_a_quote_left_open_never_drops_rows_silently(tmp_path):
    """The label-first layout was the silent case: the open quote read every later line into the last row's text."""
    lines = [f"{r['label']},{r['text']}\n" for r in ROWS]
    lines[199] = f'{ROWS[199]["label"]},"{ROWS[199]["text"]}\n'
    path = _write(tmp_path, "t.csv", "label,text\n" + "".join(lines))
    with pytest.raises(DataError, match="line 201: a quote opened on this line is never closed"):
        _fit_data(tmp_path / "cache", train_file=str(path))


def test_a_duplicate_header_blames_the_training_file_also_with_a_val_file(tmp_path):
    train = _write(tmp_path, "train.csv", "label,text,text\n" + "".join(f"{r['label']},{r['text']},x\n" for r in ROWS))
    val = _write(tmp_path, "val.csv", "label,text\n" + "".join(f"{r['label']},{r['text']}\n" for r in ROWS[:20]))
    for extra in ({}, {"val_file": str(val)}):
        with pytest.raises(DataError) as caught:
            _fit_data(tmp_path / "cache", train_file=str(train), **extra)
        assert str(train) in str(caught.value) and "'text' appears 2 times" in str(caught.value)
        assert str(val) not in str(caught.value)


def test_a_bad_val_test_or_predict_file_is_named_not_the_training_file(tmp_path):
    train = _write(tmp_path, "train.csv", CSV)
    bad = _write(tmp_path, "bad.csv", _csv_with(6, '"unclosed,pos\n'))
    for option, stage in (("val_file", "fit"), ("test_file", "test"), ("predict_file", "predict")):
        dm = TextDataModule(train_file=str(train), cache_dir=str(tmp_path / "cache"), **{option: str(bad)})
        with pytest.raises(DataError, match=r"bad\.csv', line 6: a quote opened"):
            dm.setup(stage)


def test_the_strict_csv_check_runs_once_per_file(tmp_path, monkeypatch):
    """Files with multi-line fields are read strictly once, not once per pass (scan, vocabulary, encode)."""
    import textcls.data.readers as readers

    calls = []
    real = readers.csv_problem
    monkeypatch.setattr(readers, "csv_problem", lambda *a, **k: calls.append(a) or real(*a, **k))
    dm = _fit_data(tmp_path / "cache", train_file=str(_write(tmp_path, "t.csv", MULTILINE)))
    assert len(dm.datasets["train"]) == 360 and len(calls) == 1


# ----- damaged cache entries -----


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated-train-arrow": ("train.arrow", _truncate),
    "deleted-train-arrow": ("train.arrow", Path.unlink),
    "deleted-meta": ("meta.json", Path.unlink),
    "emptied-meta": ("meta.json", lambda p: p.write_text("")),
    "same-size-tokenizer-edit": ("tokenizer.json", _flip_one_byte),
    "grown-validation-arrow": ("validation.arrow", lambda p: p.write_bytes(p.read_bytes() + b"\0" * 64)),
    "deleted-manifest": (MANIFEST, Path.unlink),
    "garbage-manifest": (MANIFEST, lambda p: p.write_text("{not json")),
    "manifest-wrong-shape": (MANIFEST, lambda p: p.write_text('{"files": [1, 2]}')),
    "file-replaced-by-directory": ("meta.json", lambda p: (p.unlink(), p.mkdir())),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(tmp_path, case):
    file_name, damage = DAMAGE[case]
    cache = tmp_path / "cache"
    train = _write(tmp_path, "t.csv", CSV)
    first = _fit_data(cache, train_file=str(train))
    (entry,) = [cache / name for name in _trusted_entries(cache)]
    damage(entry / file_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _fit_data(cache, train_file=str(train))
    damaged = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert len(damaged) == 1 and str(entry) in damaged[0], damaged
    assert again.built_entries and again.tokenizer.vocab == first.tokenizer.vocab
    assert len(again.datasets["train"]) == len(first.datasets["train"]) == 360
    assert entry_damage(entry) is None and _trusted_entries(cache) == [entry.name]
    assert not list(cache.glob("*.tmp-*"))


def test_a_damaged_eval_entry_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    train, val = _write(tmp_path, "t.csv", CSV), _write(tmp_path, "v.csv", "text,label\n" + "".join(CSV_LINES[:30]))
    _fit_data(cache, train_file=str(train), val_file=str(val))
    (entry,) = [cache / n for n in _trusted_entries(cache) if n.startswith("validation-")]
    _truncate(entry / "split.arrow")
    with pytest.warns(UserWarning, match="damaged"):
        again = _fit_data(cache, train_file=str(train), val_file=str(val))
    assert len(again.datasets["validation"]) == 30


def test_an_intact_entry_is_reused_without_a_warning(tmp_path):
    cache = tmp_path / "cache"
    train = _write(tmp_path, "t.csv", CSV)
    _fit_data(cache, train_file=str(train))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _fit_data(cache, train_file=str(train)).built_entries == []


def test_waiters_on_a_damaged_entry_rebuild_it_once(tmp_path):
    cache, markers = tmp_path / "cache", tmp_path / "markers"
    markers.mkdir()
    slow_build(cache, markers)  # publish once
    (cache / "train-same-key" / "meta.json").write_text('{"damaged": true}')
    assert race_three_builders(cache, markers) == [0, 0, 0]
    assert len(list(markers.iterdir())) == 2  # the first build and exactly one rebuild
    assert entry_damage(cache / "train-same-key") is None


# ----- file-system faults under the cache -----


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted for the test (CI runs as root); skipped where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_cache_dir_that_is_a_file_is_one_error(tmp_path):
    train = _write(tmp_path, "t.csv", CSV)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    for cache in (blocker, blocker / "below"):
        with pytest.raises(DataError, match=r"cannot write the data cache .*not a directory.*--data\.cache_dir"):
            _fit_data(cache, train_file=str(train))
    assert blocker.read_text() == "x"


def test_no_space_left_while_building_is_one_error_and_leaves_nothing(tmp_path):
    train = _write(tmp_path, "t.csv", "text,label\n" + "".join(CSV_LINES * 20))
    with _tmpfs(tmp_path / "small", "size=64k") as disk:
        cache = disk / "cache"
        with pytest.raises(DataError, match=r"cannot write the data cache .*no space left on device.*free some space"):
            _fit_data(cache, train_file=str(train))
        assert _trusted_entries(cache) == [] and not list(cache.glob("*.tmp-*"))
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert len(_fit_data(cache, train_file=str(train)).datasets["train"]) == 7200


def test_a_read_only_cache_is_one_error_but_its_intact_entries_are_used(tmp_path):
    train = _write(tmp_path, "t.csv", CSV)
    with _tmpfs(tmp_path / "ro", "size=4m") as disk:
        cache = disk / "cache"
        _fit_data(cache, train_file=str(train))
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert _fit_data(cache, train_file=str(train)).built_entries == []  # a shared read-only cache works
        with pytest.raises(DataError, match=r"cannot write the data cache .*read-only file system"):
            _fit_data(cache, train_file=str(train), max_length=7)
        (entry,) = _trusted_entries(cache)
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        _truncate(cache / entry / "train.arrow")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(DataError, match=r"is damaged \(train\.arrow .*\) and cannot write the data cache"):
            _fit_data(cache, train_file=str(train))


def _build_as_nobody(cache: str, train: str, result: multiprocessing.Queue) -> None:
    os.setgid(65534)
    os.setuid(65534)
    try:
        _fit_data(Path(cache), train_file=train)
        result.put("built")
    except DataError as err:
        result.put(str(err))
    except BaseException as err:  # the parent reports it
        result.put(f"{type(err).__name__}: {err}")


def test_permission_denied_on_the_cache_is_one_error(tmp_path):
    if os.geteuid() != 0:
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o555)
        with pytest.raises(DataError, match=r"cannot write the data cache .*permission denied"):
            _fit_data(cache, train_file=str(_write(tmp_path, "t.csv", CSV)))
        return
    # Root ignores permissions: build as another user, in a forked child, in a directory that user can reach
    # (pytest's own temporary directories are private to root).
    shared = Path(tempfile.mkdtemp(prefix="textcls-permission-"))
    try:
        shared.chmod(0o755)
        train = _write(shared, "t.csv", CSV)
        train.chmod(0o644)
        cache = shared / "cache"
        cache.mkdir(mode=0o755)
        context = multiprocessing.get_context("fork")
        result = context.Queue()
        child = context.Process(target=_build_as_nobody, args=(str(cache), str(train), result))
        child.start()
        child.join(timeout=60)
        message = result.get(timeout=5)
    finally:
        shutil.rmtree(shared)
    assert "cannot write the data cache" in message and "permission denied" in message, message
    assert str(cache) in message
