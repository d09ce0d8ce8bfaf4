"""Word-level tokenizer whose hot path runs in pyarrow compute kernels and whose file format is `tokenizers`' JSON.

Why not `tokenizers` itself for encoding: its `encode_batch` with a WordLevel model runs several times slower than
pyarrow's vectorised kernels (benchmarks/data_pipeline.py, benchmarks/tokenizer_parity.py). The saved JSON is a
valid `tokenizers` WordLevel tokenizer (Lowercase normaliser, Whitespace pre-tokenizer) and `split_words` follows
its rules, so `tokenizers.Tokenizer.from_str(...)` gives the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from functools import cached_property
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from textcls.data.errors import DataError
from textcls.data.pretokenize import split_words

__all__ = ["PAD_TOKEN", "SMALL_CALL_TEXTS", "UNK_TOKEN", "VocabCounter", "WordTokenizer", "split_words"]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
# Rows per pyarrow task: large enough to amortise kernel dispatch, small enough to spread over cores.
CHUNK_ROWS = 65_536
_T = TypeVar("_T")


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


def _map(fn: Callable[[pa.Array], _T], chunks: list[pa.Array], executor: Executor | None) -> list[_T]:
    """pyarrow kernels release the GIL, so the caller's thread pool spreads chunks over cores without pickling."""
    if executor is None or len(chunks) <= 1:
        return [fn(c) for c in chunks]
    return list(executor.map(fn, chunks))


# A pyarrow call costs milliseconds whatever its size (RE2 compiles the Unicode classes on every call) where
# `tokenizers` takes microseconds for a short text, so small calls go through the served tokenizer itself; on long
# texts `tokenizers` is the slower one (benchmarks/tokenizer_parity.py).
SMALL_CALL_TEXTS = 64
SMALL_CALL_CHARS = 65_536


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
        executor: Executor | None = None,
    ) -> WordTokenizer:
        """Build the vocabulary: tokens by descending count, ties broken alphabetically so it is reproducible."""
        counter = VocabCounter(lowercase, executor)
        counter.update(texts)
        return counter.build(min_freq, max_vocab_size)

    def encode(
        self, texts: pa.Array | pa.ChunkedArray, max_length: int, executor: Executor | None = None
    ) -> pa.ListArray:
        """Token ids (int32) per text, truncated to `max_length`; unknown words map to `<unk>`.

        `executor` (a thread pool) encodes chunks of CHUNK_ROWS texts in parallel; unset, in the calling thread.
        """

        def encode_chunk(chunk: pa.Array) -> pa.ListArray:
            words = split_words(chunk, self.lowercase)
            if (pc.max(pc.list_value_length(words)).as_py() or 0) > max_length:  # slicing costs ~20% of encode
                words = pc.list_slice(words, 0, max_length)
            ids = pc.fill_null(pc.index_in(pc.list_flatten(words), value_set=self._vocab_array), self.unk_id)
            offsets = pc.subtract(words.offsets, words.offsets[0])
            return pa.ListArray.from_arrays(offsets, ids.cast(pa.int32()))

        chunks = _map(encode_chunk, _as_chunks(texts), executor)
        if not chunks:
            return pa.array([], pa.list_(pa.int32()))
        return pa.concat_arrays(chunks)

    def encode_texts(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of a handful of Python strings (prediction); same ids as `encode`."""
        if len(texts) <= SMALL_CALL_TEXTS and sum(map(len, texts)) <= SMALL_CALL_CHARS:
            served = self._served
            return [served.encode(text).ids[:max_length] for text in texts]  # `encode_batch` would start threads
        return self.encode(pa.array(texts, pa.string()), max_length).to_pylist()

    @cached_property
    def _served(self) -> Any:
        """This tokenizer as `tokenizers` runs its JSON, without added tokens (as export and serve read it)."""
        import tokenizers  # only prediction's small calls need it

        served = tokenizers.Tokenizer(
            tokenizers.models.WordLevel({t: i for i, t in enumerate(self.vocab)}, unk_token=UNK_TOKEN)
        )
        served.normalizer = tokenizers.normalizers.Lowercase() if self.lowercase else None
        served.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
        return served

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
        executor: a thread pool that counts chunks in parallel; unset, the calling thread counts.
    """

    #: partial count tables are merged once this many have piled up, bounding memory by the vocabulary size
    MERGE_EVERY = 16

    def __init__(self, lowercase: bool = True, executor: Executor | None = None) -> None:
        self.lowercase = lowercase
        self.executor = executor
        self._partial: list[pa.Table] = []

    def update(self, texts: pa.Array | pa.ChunkedArray) -> None:
        def count(chunk: pa.Array) -> pa.Table:
            counts = pc.value_counts(pc.list_flatten(split_words(chunk, self.lowercase)))
            return pa.table({"token": counts.field("values"), "count": counts.field("counts")})

        self._partial.extend(_map(count, _as_chunks(texts), self.executor))
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
