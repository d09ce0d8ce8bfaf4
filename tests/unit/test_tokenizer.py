import pyarrow as pa
import pytest
from tokenizers import Tokenizer

from textcls.data.errors import DataError
from textcls.data.tokenizer import WordTokenizer

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
    assert WordTokenizer.train(texts).vocab == tok.vocab
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
    # `encode` is the pyarrow path (its ASCII split kernel); `encode_texts` takes the pure-Python small-call path.
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
