"""Word-level tokenizer whose hot path runs in pyarrow compute kernels and whose file format is `tokenizers`' JSON.

Why not `tokenizers` itself for encoding: on this machine its `encode_batch` with a WordLevel model ran at 0.45x a
plain-Python regex baseline, pyarrow's vectorised kernels at several times the baseline (see
benchmarks/data_pipeline.py). The saved JSON is a valid `tokenizers` WordLevel tokenizer (Lowercase normaliser,
Whitespace pre-tokenizer), so `tokenizers.Tokenizer.from_str(...)` reproduces the same ids and a user can inspect it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textcls.data.errors import DataError

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
# The `tokenizers` Whitespace pre-tokenizer splits on `\w+|[^\w\s]+`. Putting spaces around every run of
# punctuation and then splitting on whitespace gives the same tokens: what is left between are the word runs.
# Matching only the punctuation runs is ~25x faster in RE2 than matching both alternatives (measured on 25-word
# rows: 690k vs 25k rows/s). Unicode classes, because RE2's `\w` is ASCII-only and would split "café" in two.
PUNCTUATION_PATTERN = r"([^\pL\pN\pM_\s]+)"
# Rows per pyarrow task: large enough to amortise kernel dispatch, small enough to spread over cores.
CHUNK_ROWS = 65_536


def _as_chunks(texts: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks == 0 else texts
        chunks: Iterable[pa.Array] = texts.chunks
    else:
        chunks = [texts]
    out: list[pa.Array] = []
    for chunk in chunks:
        out.extend(chunk.slice(start, CHUNK_ROWS) for start in range(0, max(len(chunk), 1), CHUNK_ROWS))
    return out


_pool: tuple[int, ThreadPoolExecutor] | None = None


def _map(fn, chunks: list[pa.Array]) -> list:
    """pyarrow kernels release the GIL, so threads use every core without pickling anything.

    One pool for the process: a new pool per call starts new threads, and every thread that exits abandons its
    allocator heap (mimalloc, pyarrow's default), which grew memory with the number of batches of a large file.
    """
    global _pool
    if len(chunks) <= 1:
        return [fn(c) for c in chunks]
    if _pool is None or _pool[0] != os.getpid():  # a forked child inherits the pool object but not its threads
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1))
    return list(_pool[1].map(fn, chunks))


def split_words(texts: pa.Array, lowercase: bool = True) -> pa.ListArray:
    """Split each text into word and punctuation tokens; null or blank texts give an empty list."""
    texts = pc.fill_null(texts.cast(pa.string()), "")
    if lowercase:
        texts = pc.utf8_lower(texts)
    spaced = pc.replace_substring_regex(texts, pattern=PUNCTUATION_PATTERN, replacement=r" \1 ")
    spaced = pc.utf8_trim_whitespace(spaced)
    # On ASCII-only text both whitespace definitions agree, and the ASCII kernel is ~1.6x faster.
    ascii_only = pc.all(pc.string_is_ascii(spaced)).as_py() is not False
    words = pc.ascii_split_whitespace(spaced) if ascii_only else pc.utf8_split_whitespace(spaced)
    # A blank text splits into [""]; drop those empty tokens and rebuild the offsets without a Python loop.
    flat = pc.list_flatten(words)
    keep = pc.not_equal(flat, "")
    if pc.all(keep).as_py() is not False:
        return words
    parents = pc.list_parent_indices(words).to_numpy()[keep.to_numpy(zero_copy_only=False)]
    counts = np.bincount(parents, minlength=len(words))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, keep))


# Small calls of plain ASCII text skip the pyarrow kernels, whose fixed cost per call (measured at a 50k vocabulary:
# 4 ms for one short text, 1.8 ms of it `index_in` hashing the vocabulary again) is 20-50x a network's time for one
# text; small calls of other text skip `index_in` only. On printable ASCII plus tab / newline / CR, `split_words`
# reduces to this pattern (RE2's \pL\pN\pM_ is [A-Za-z0-9_] there, and both whitespace definitions agree);
# tests/unit/test_tokenizer.py checks that every small-call path gives the ids of `encode`.
SMALL_CALL_TEXTS = 64
_PLAIN_ASCII = re.compile(r"[\t\n\r\x20-\x7e]*")
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_\s]+", re.ASCII)


class WordTokenizer:
    """A vocabulary of words with `<pad>` at id 0 and `<unk>` at id 1.

    Args:
        vocab: the tokens in id order; must start with `<pad>`, `<unk>`.
        lowercase: lowercase texts before splitting them.
    """

    def __init__(self, vocab: list[str], lowercase: bool = True) -> None:
        if vocab[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise DataError(f"a vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}; got {vocab[:2]}.")
        if len(set(vocab)) != len(vocab):
            raise DataError("the vocabulary has duplicate tokens.")
        self.vocab = list(vocab)
        self.lowercase = lowercase
        self._vocab_array = pa.array(self.vocab, pa.string())

    pad_id = 0
    unk_id = 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def train(
        cls,
        texts: pa.Array | pa.ChunkedArray,
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: int | None = None,
    ) -> WordTokenizer:
        """Build the vocabulary: tokens by descending count, ties broken alphabetically so it is reproducible."""
        counter = VocabCounter(lowercase)
        counter.update(texts)
        return counter.build(min_freq, max_vocab_size)

    def encode(self, texts: pa.Array | pa.ChunkedArray, max_length: int) -> pa.ListArray:
        """Token ids (int32) per text, truncated to `max_length`; unknown words map to `<unk>`."""

        def encode_chunk(chunk: pa.Array) -> pa.ListArray:
            words = split_words(chunk, self.lowercase)
            if (pc.max(pc.list_value_length(words)).as_py() or 0) > max_length:  # slicing costs ~20% of encode
                words = pc.list_slice(words, 0, max_length)
            ids = pc.fill_null(pc.index_in(pc.list_flatten(words), value_set=self._vocab_array), self.unk_id)
            offsets = pc.subtract(words.offsets, words.offsets[0])
            return pa.ListArray.from_arrays(offsets, ids.cast(pa.int32()))

        chunks = _map(encode_chunk, _as_chunks(texts))
        if not chunks:
            return pa.array([], pa.list_(pa.int32()))
        return pa.concat_arrays(chunks)

    def encode_texts(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of a handful of Python strings (prediction); same ids as `encode`."""
        if len(texts) > SMALL_CALL_TEXTS:
            return self.encode(pa.array(texts, pa.string()), max_length).to_pylist()
        if all(_PLAIN_ASCII.fullmatch(t) for t in texts):
            return [self._ascii_ids(text, max_length) for text in texts]
        # Other text keeps pyarrow's splitting (Unicode classes) but looks the few words up in a dict: `index_in`
        # would hash the whole vocabulary again for them.
        words = split_words(pa.array(texts, pa.string()), self.lowercase).to_pylist()
        return [[self._ids.get(word, self.unk_id) for word in row[:max_length]] for row in words]

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocab)}

    def _ascii_ids(self, text: str, max_length: int) -> list[int]:
        text = text.lower() if self.lowercase else text
        words = itertools.islice(_ASCII_TOKEN.finditer(text), max_length)
        return [self._ids.get(m.group(), self.unk_id) for m in words]

    def to_json(self) -> str:
        """A `tokenizers` WordLevel tokenizer.json."""
        normalizer = {"type": "Lowercase"} if self.lowercase else None
        return json.dumps(
            {
                "version": "1.0",
                "truncation": None,
                "padding": None,
                "added_tokens": [
                    {
                        "id": i,
                        "content": t,
                        "single_word": False,
                        "lstrip": False,
                        "rstrip": False,
                        "normalized": False,
                        "special": True,
                    }
                    for i, t in enumerate((PAD_TOKEN, UNK_TOKEN))
                ],
                "normalizer": normalizer,
                "pre_tokenizer": {"type": "Whitespace"},
                "post_processor": None,
                "decoder": None,
                "model": {
                    "type": "WordLevel",
                    "vocab": {t: i for i, t in enumerate(self.vocab)},
                    "unk_token": UNK_TOKEN,
                },
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "tokenizer") -> WordTokenizer:
        try:
            spec = json.loads(text)
            model = spec["model"]
            if model.get("type") != "WordLevel" or (spec.get("pre_tokenizer") or {}).get("type") != "Whitespace":
                raise DataError(
                    f"{source}: only WordLevel tokenizers with a Whitespace pre-tokenizer are supported "
                    f"(got model {model.get('type')!r}); train one with textcls or the `tokenizers` library."
                )
            by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
        except DataError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:  # ValueError: bad JSON
            reason = " ".join(str(err).split())[:200]
            raise DataError(f"{source}: not a tokenizer.json ({type(err).__name__}: {reason}).") from None
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise DataError(f"{source}: vocabulary ids must be 0..N-1 without gaps.")
        lowercase = (spec.get("normalizer") or {}).get("type") == "Lowercase"
        return cls([t for t, _ in by_id], lowercase=lowercase)


class VocabCounter:
    """Token counts accumulated batch by batch, so a vocabulary can be learned from a file larger than memory.

    Args:
        lowercase: lowercase texts before splitting them (as the resulting tokenizer will).
    """

    #: partial count tables are merged once this many have piled up, bounding memory by the vocabulary size
    MERGE_EVERY = 16

    def __init__(self, lowercase: bool = True) -> None:
        self.lowercase = lowercase
        self._partial: list[pa.Table] = []

    def update(self, texts: pa.Array | pa.ChunkedArray) -> None:
        def count(chunk: pa.Array) -> pa.Table:
            counts = pc.value_counts(pc.list_flatten(split_words(chunk, self.lowercase)))
            return pa.table({"token": counts.field("values"), "count": counts.field("counts")})

        self._partial.extend(_map(count, _as_chunks(texts)))
        if len(self._partial) >= self.MERGE_EVERY:
            self._partial = [self._totals()]

    def _totals(self) -> pa.Table:
        if not self._partial:
            return pa.table({"token": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
        partial = pa.concat_tables(self._partial)
        return partial.group_by("token").aggregate([("count", "sum")]).rename_columns(["token", "count"])

    def build(self, min_freq: int = 1, max_vocab_size: int | None = None) -> WordTokenizer:
        totals = self._totals()
        totals = totals.filter(pc.greater_equal(totals["count"], min_freq))
        totals = totals.filter(pc.invert(pc.is_in(totals["token"], pa.array([PAD_TOKEN, UNK_TOKEN]))))
        order = pc.sort_indices(totals, sort_keys=[("count", "descending"), ("token", "ascending")])
        if max_vocab_size is not None:
            order = order[: max(max_vocab_size - 2, 0)]
        tokens = totals["token"].take(order).to_pylist()
        return WordTokenizer([PAD_TOKEN, UNK_TOKEN, *tokens], lowercase=self.lowercase)
