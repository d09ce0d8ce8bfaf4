import json
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from tokenizers import Tokenizer, normalizers, pre_tokenizers

from textcls.data.errors import DataError
from textcls.data.tokenizer import WordTokenizer, split_words
from textcls.export import serving_tokenizer_json

TEXTS = ["Hello, World!! café déjà-vu", "It's 3.5 stars...", "hello hello world", "", None, "   "]


def test_vocabulary_is_ordered_by_count_then_alphabet():
    tok = WordTokenizer.train(pa.array(TEXTS))
    assert tok.vocab[:4] == ["<pad>", "<unk>", "hello", "world"]
    assert tok.vocab[4:] == sorted(tok.vocab[4:])  # all seen once: alphabetical


def test_min_freq_and_max_vocab_size():
    tok = WordTokenizer.train(pa.array(TEXTS), min_freq=2)
    assert tok.vocab == ["<pad>", "<unk>", "hello", "world"]
    assert WordTokenizer.train(pa.array(TEXTS), max_vocab_size=3).vocab == ["<pad>", "<unk>", "hello"]


def test_encode_truncates_maps_unknown_and_handles_blank_texts():
    tok = WordTokenizer.train(pa.array(TEXTS))
    ids = tok.encode_texts(["hello UNSEEN world", "", "   ", "hello " * 10], max_length=4)
    assert ids[0] == [tok.vocab.index("hello"), tok.unk_id, tok.vocab.index("world")]
    assert ids[1] == [] and ids[2] == []
    assert len(ids[3]) == 4


def test_saved_json_is_a_tokenizers_file_with_identical_ids():
    tok = WordTokenizer.train(pa.array(TEXTS))
    hf = Tokenizer.from_str(tok.to_json())
    probe = ["Hello, World!! café déjà-vu", "It's 3.5 stars...", "unknown Word?"]
    assert [hf.encode(t).ids for t in probe] == tok.encode_texts(probe, max_length=100)
    again = WordTokenizer.from_json(tok.to_json())
    assert again.vocab == tok.vocab and again.lowercase


def test_encoding_many_chunks_matches_one_chunk(monkeypatch):
    texts = pa.array([f"word{i % 97} other{i % 13} ." for i in range(1000)])
    tok = WordTokenizer.train(texts)
    whole = tok.encode(texts, 8).to_pylist()
    monkeypatch.setattr("textcls.data.tokenizer.CHUNK_ROWS", 64)  # force the threaded multi-chunk path
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert WordTokenizer.train(texts, executor=pool).vocab == tok.vocab
        assert tok.encode(texts, 8, executor=pool).to_pylist() == whole
    assert tok.encode(texts, 8).to_pylist() == whole


def test_foreign_tokenizer_json_is_rejected_clearly():
    with pytest.raises(DataError, match="WordLevel"):
        WordTokenizer.from_json('{"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": null}')
    with pytest.raises(DataError, match=r"not a tokenizer\.json"):
        WordTokenizer.from_json("[1, 2]")


def test_ascii_fast_path_matches_tokenizers_too():
    ascii_texts = ["Hello, World!! it's 3.5 stars...", "a\tb\nc  (d) e-f", "  x  "]
    tok = WordTokenizer.train(pa.array(ascii_texts))
    hf = Tokenizer.from_str(tok.to_json())
    # `encode` is the pyarrow path (its ASCII split kernel); `encode_texts` takes the small-call path.
    assert [hf.encode(t).ids for t in ascii_texts] == tok.encode(pa.array(ascii_texts), max_length=100).to_pylist()
    assert [hf.encode(t).ids for t in ascii_texts] == tok.encode_texts(ascii_texts, max_length=100)
    assert tok.encode_texts(["a b c d e"], max_length=2) == [tok.encode_texts(["a b"], max_length=9)[0]]


@pytest.mark.parametrize("max_length", [3, 256])
def test_small_calls_of_any_text_give_the_ids_of_the_batch_path(max_length):
    """`encode_texts` (prediction: a few texts per call) takes shortcuts past pyarrow's per-call costs; on any text,
    ASCII or not, it must give exactly the ids of `encode`."""
    import numpy as np

    rng = np.random.default_rng(1)
    pieces = [
        "Café",
        "naïve",
        "İstanbul",
        "ÉCOLE",
        "x\u00a0y",
        "日本語",
        "e\u0301",
        "½",
        "—",
        "…",
        "ß",
        "film",
        " ",
        "!",
    ]
    pieces += ["great", "DULL", "'", "..", "\t", "_", "2"]
    texts = ["", " ", "\u00a0", *("".join(rng.choice(pieces, size=rng.integers(0, 25))) for _ in range(400))]
    tokenizer = WordTokenizer.train(pa.array(texts[::2]), min_freq=1)
    for start in range(0, len(texts), 40):
        batch = texts[start : start + 40]
        assert tokenizer.encode_texts(batch, max_length) == tokenizer.encode(pa.array(batch), max_length).to_pylist()
    assert any(tokenizer.unk_id < i for row in tokenizer.encode_texts(texts[:40], max_length) for i in row)


def _served(tok: WordTokenizer, max_length: int) -> Tokenizer:
    """The tokenizer as export writes it and `textcls serve --backend onnx` reads it."""
    spec = json.loads(serving_tokenizer_json(tok, max_length))
    hf = Tokenizer.from_str(json.dumps(spec))
    hf.no_padding()
    return hf


@pytest.mark.parametrize("lowercase", [True, False])
def test_every_code_point_splits_and_lowercases_as_tokenizers_does(lowercase):
    """Each assigned code point between two letters: word, punctuation or space as `tokenizers` decides (the
    exported tokenizer.json's rules). Code points this Python's Unicode tables do not know are left out: pyarrow's
    RE2 and `tokenizers`' Oniguruma carry different Unicode versions for them."""
    points = [c for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    rows = [" ".join(f"a{chr(c)}b" for c in points[i : i + 512]) for i in range(0, len(points), 512)]
    ours = split_words(pa.array(rows), lowercase=lowercase).to_pylist()
    pre, lower = pre_tokenizers.Whitespace(), normalizers.Lowercase()
    for row, got in zip(rows, ours, strict=True):
        want = [word for word, _ in pre.pre_tokenize_str(lower.normalize_str(row) if lowercase else row)]
        if got != want:
            bad = [
                c
                for c in row[1::4]
                if split_words(pa.array([f"a{c}b"]), lowercase).to_pylist()[0]
                != [w for w, _ in pre.pre_tokenize_str(lower.normalize_str(f"a{c}b") if lowercase else f"a{c}b")]
            ]
            pytest.fail(f"split differs from tokenizers at {[f'U+{ord(c):04X}' for c in bad][:20]}")


# The classes where the pyarrow split once disagreed with `tokenizers`: numbers that are not digits, connector
# punctuation and joiners, circled letters, Unicode and ASCII-control whitespace, a lowercase that grows.
HOSTILE_PIECES = [
    *("½", "²", "³", "¼", "Ⅻ", "٣", "‿", "⁀", "\u200d", "\u200c", "Ⓐ", "🄰", "e\u0301", "\u0308"),
    *("\u0085", "\u00a0", "\u2003", "\u3000", "\u2028", "\u1680", "\x1c", "\x1f", "\x0b", "\x0c"),
    *("İ", "ΣΑΣ", "ß", "ǅ", "日本語", "…", "—", "«", "»", "'", "..", "!?", "_", "-", "<pad>", "<unk>"),
    *("film", "GREAT", "2", "3.5", "café", " ", " ", "\t", "\n"),
]


@pytest.mark.parametrize("lowercase", [True, False])
def test_generated_hostile_texts_get_the_ids_of_the_exported_tokenizer(lowercase):
    rng = np.random.default_rng(7)
    texts = ["", " ", "\u3000", *("".join(rng.choice(HOSTILE_PIECES, size=rng.integers(1, 30))) for _ in range(600))]
    tok = WordTokenizer.train(pa.array(texts[::2]), lowercase=lowercase)
    served = _served(tok, 24)
    want = [e.ids for e in served.encode_batch(texts)]
    assert tok.encode(pa.array(texts), 24).to_pylist() == want  # the batch path (training, big predictions)
    assert [tok.encode_texts([t], 24)[0] for t in texts] == want  # the small-call path (prediction, serving)
    assert sum(1 for row in want for i in row if i == tok.unk_id) > 50  # unseen words reach `<unk>` the same way
