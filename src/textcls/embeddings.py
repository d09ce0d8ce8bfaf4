"""Pretrained word vectors (word2vec / GloVe / fastText `.vec` text, optionally gzipped) copied into an embedding table.

The file is streamed once and only the vectors of vocabulary words are kept, so a multi-gigabyte GloVe file needs no
more memory than the embedding table itself. Values are parsed only on the lines of vocabulary words; every other
line is checked for its number of fields only, which keeps a pass over a 2 M-word file at the speed of reading it.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textcls.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_PROGRESS_EVERY_LINES = 100_000


@dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary a vector file covered."""

    path: str
    found: int
    total: int
    dim: int
    lowercase_matches: int = 0

    @property
    def percent(self) -> float:
        return 100.0 * self.found / self.total if self.total else 0.0

    def message(self) -> str:
        folded = f"; {self.lowercase_matches} of them by their lowercased form" if self.lowercase_matches else ""
        return (
            f"pretrained vectors: {self.found} of {self.total} vocabulary words ({self.percent:.1f} %) found in "
            f"{self.path} (dim {self.dim}){folded}"
        )


def read_vectors(
    path: str | Path,
    words: dict[str, int],
    lowercase: bool = False,
    expected_dim: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[dict[int, np.ndarray], int, int]:
    """The vectors of the words in `words` (word -> row id) found in a word-vector text file.

    One line per word: the word, then its values separated by single spaces; an optional first line "COUNT DIM"
    (word2vec, fastText) is recognised, GloVe files have none. A word may contain spaces (GloVe 840B has a few): the
    last DIM fields are the vector. With `lowercase`, a file word also matches by its lowercased form; the first such
    line wins, and a line whose word matches exactly is preferred over any lowercased match.

    Returns (row id -> float32 vector, dimension, number of rows matched through lowercasing only).
    `progress` is called now and then with the fraction of the file read.
    """
    path = Path(path)
    exact: dict[int, np.ndarray] = {}
    folded: dict[int, np.ndarray] = {}
    dim: int | None = None
    for number, line in _lines(path, progress):
        if dim is None:  # the first non-blank line: a header, or the first vector
            dim, header = _first_line_dim(path, line, expected_dim)
            if header:
                continue
        assert dim is not None
        word, _, rest = line.partition(" ")
        row = words.get(word)
        is_exact = row is not None
        if row is None and lowercase:
            row = words.get(word.lower())
            if row is not None and (row in exact or row in folded):
                row = None  # an earlier line already gave this row a vector
        elif row is not None and row in exact:
            row = None
        if row is None:
            # Not a vocabulary word: only the field count is checked (more fields = a word with spaces in it).
            if rest.count(" ") < dim - 1 or not rest:
                raise _malformed(path, number, dim, line)
            continue
        parts = line.rsplit(" ", dim)
        if len(parts) != dim + 1:
            raise _malformed(path, number, dim, line)
        if parts[0] != word:
            continue  # the file's word has spaces in it, so it is not the vocabulary word its first part matched
        try:
            vector = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise _malformed(path, number, dim, line) from None
        if not np.isfinite(vector).all():
            raise DataError(f"{path}:{number}: the vector of {word!r} has a NaN or infinite value.")
        (exact if is_exact else folded)[row] = vector
    if dim is None:
        raise DataError(f"{path} is empty; it should hold one word and its vector per line.")
    merged = {**folded, **exact}
    return merged, dim, len(merged) - len(exact)


def check_vectors_file(path: str | Path, expected_dim: int | None = None) -> int:
    """The dimension of a word-vector file, read from its first line only: a quick check before a long run starts."""
    path = Path(path)
    lines = _lines(path, None)
    try:
        for _, line in lines:
            return _first_line_dim(path, line, expected_dim)[0]
    finally:
        lines.close()
    raise DataError(f"{path} is empty; it should hold one word and its vector per line.")


def load_pretrained(
    embedding: nn.Embedding,
    path: str | Path,
    vocab: Sequence[str],
    lowercase: bool = False,
    skip_ids: Collection[int] = (),
    progress: Callable[[float], None] | None = None,
) -> Coverage:
    """Copy the vectors of a word-vector file into `embedding` (row i is `vocab[i]`) and report the coverage.

    Rows of words missing from the file keep their random initialisation, rescaled so that their standard deviation
    is that of the pretrained vectors (Kim, 2014, draws them with the pretrained variance). The padding row is zero.
    `skip_ids` (special tokens such as `<unk>`) are neither looked up nor counted in the coverage.
    """
    if not isinstance(embedding, nn.Embedding):
        raise DataError(f"pretrained vectors need an nn.Embedding, got {type(embedding).__name__}.")
    path = Path(path)
    if len(vocab) != embedding.num_embeddings:
        raise DataError(
            f"the vocabulary has {len(vocab)} tokens but the embedding table has {embedding.num_embeddings} rows."
        )
    skip = set(skip_ids)
    if embedding.padding_idx is not None:
        skip.add(embedding.padding_idx)
    words = {word: i for i, word in enumerate(vocab) if i not in skip}
    vectors, dim, lowercase_matches = read_vectors(path, words, lowercase, embedding.embedding_dim, progress)
    coverage = Coverage(str(path), len(vectors), len(words), dim, lowercase_matches)
    if not vectors:
        # Training would silently run with random vectors: almost always the wrong file (another language, a
        # tokenizer that splits differently) or a casing mismatch, so this stops rather than warns.
        hint = "" if lowercase else " (the tokenizer keeps case: is the file lowercased? try --data.lowercase true)"
        raise DataError(
            f"none of the {len(words)} vocabulary words has a vector in {path}{hint}; check that it is a word-vector "
            "file for this language and tokenization, or drop --model.pretrained_embeddings."
        )
    with torch.no_grad():
        weight = embedding.weight
        order = sorted(vectors)
        rows = torch.tensor(order, dtype=torch.long, device=weight.device)
        table = torch.from_numpy(np.stack([vectors[i] for i in order]))
        missing = torch.ones(len(weight), dtype=torch.bool, device=weight.device)
        missing[rows] = False
        if embedding.padding_idx is not None:
            missing[embedding.padding_idx] = False
        target_std = float(table.std()) if table.numel() > 1 else 0.0
        if missing.any() and math.isfinite(target_std) and target_std > 0:
            current_std = float(weight[missing].float().std()) if int(missing.sum()) * weight.shape[1] > 1 else 0.0
            if current_std > 0:
                weight[missing] = weight[missing] * (target_std / current_std)
        weight[rows] = table.to(device=weight.device, dtype=weight.dtype)
        if embedding.padding_idx is not None:
            weight[embedding.padding_idx] = 0
    return coverage


def _lines(path: Path, progress: Callable[[float], None] | None) -> Generator[tuple[int, str], None, None]:
    """(line number, line without its end) for each non-blank line, decoding UTF-8; undecodable bytes never match."""
    if not path.exists():
        raise DataError(f"pretrained vectors file '{path}' does not exist; pass the path of a .vec/.txt(.gz) file.")
    if path.is_dir():
        raise DataError(f"pretrained vectors path '{path}' is a directory; pass the path of a .vec/.txt(.gz) file.")
    try:
        raw = path.open("rb")
    except OSError as err:
        raise DataError(f"cannot read pretrained vectors file '{path}': {err.strerror or err}.") from None
    size = max(path.stat().st_size, 1)
    with raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        # newline="\n": a stray carriage return inside a word must not split the line.
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="\n")
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                line = line.rstrip()
                if line:
                    yield number, line
                if progress is not None and number % _PROGRESS_EVERY_LINES == 0:
                    progress(raw.tell() / size)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DataError(f"{path}: broken gzip data after line {number} ({err}); download the file again.") from None


def _first_line_dim(path: Path, line: str, expected: int | None) -> tuple[int, bool]:
    """(dimension, whether the line is a "COUNT DIM" header)."""
    fields = line.split()
    if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
        return _check_dim(path, int(fields[1]), expected, "its header"), True
    return _check_dim(path, _trailing_numbers(line), expected, "its first line"), False


def _trailing_numbers(line: str) -> int:
    """How many fields after the first one end the line as numbers: the dimension, even if the word has spaces."""
    count = 0
    for field in reversed(line.split(" ")[1:]):
        try:
            float(field)
        except ValueError:
            break
        count += 1
    return count


def _check_dim(path: Path, dim: int, expected: int | None, where: str) -> int:
    if dim < 1:
        raise DataError(f"{path}: {where} holds no vector values; expected 'word v1 v2 ...' per line.")
    if expected is not None and dim != expected:
        raise DataError(
            f"{path} holds {dim}-dimensional vectors ({where}) but the model's embedding_dim is {expected}; "
            f"pass --model.model.init_args.embedding_dim {dim}."
        )
    return dim


def _malformed(path: Path, number: int, dim: int, line: str) -> DataError:
    shown = line if len(line) <= 60 else line[:57] + "..."
    # surrogateescape turns undecodable bytes into U+DC80..U+DCFF
    undecodable = "\x00" in line or any("\udc80" <= c <= "\udcff" for c in line[:200])
    binary = " (a binary word2vec .bin file? only the text format is read: convert it)" if undecodable else ""
    return DataError(
        f"{path}:{number}: malformed line {shown!r}: expected a word and {dim} numbers separated by spaces{binary}."
    )
