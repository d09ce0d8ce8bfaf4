"""Pretrained word vectors: parsing the text formats, matching a vocabulary, filling an embedding table, errors."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from textcls.data.errors import DataError
from textcls.embeddings import check_vectors_file, load_pretrained, read_vectors
from textcls.models import MLP, TextCNN
from textcls.module import TextClassifier
from textcls.optim import parameter_groups

VOCAB = ["<pad>", "<unk>", "the", "film", "great", "awful", "plot"]


def _vectors(words: list[str], dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {w: rng.normal(0, 0.4, dim).astype(np.float32) for w in words}


def _write(path: Path, vectors: dict[str, np.ndarray] | list[tuple[str, np.ndarray]], header: bool = False) -> Path:
    items = list(vectors.items()) if isinstance(vectors, dict) else vectors
    lines = [f"{len(items)} {len(items[0][1])}"] if header else []
    # fastText .vec lines end with a space; GloVe's do not: both must parse
    lines += [f"{w} " + " ".join(f"{x:.6f}" for x in v) + (" " if header else "") for w, v in items]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["glove.txt", "fasttext.vec", "glove.txt.gz", "w2v.vec.gz"])
def test_text_and_gzip_with_and_without_header(tmp_path: Path, name: str) -> None:
    vectors = _vectors(["the", "film", "unrelated", "plot", "extra"], dim=5)
    path = _write(tmp_path / name, vectors, header=name.startswith(("fasttext", "w2v")))
    words = {w: i for i, w in enumerate(VOCAB)}
    found, dim, folded = read_vectors(path, words, expected_dim=5)
    assert dim == 5 and folded == 0 and check_vectors_file(path, 5) == 5
    assert sorted(found) == [words["the"], words["film"], words["plot"]]
    for word in ("the", "film", "plot"):
        np.testing.assert_allclose(found[words[word]], vectors[word], atol=1e-6)


def test_lowercase_matching_prefers_the_exact_case_and_else_the_first_line(tmp_path: Path) -> None:
    v = _vectors(["The", "the", "FILM", "Film", "Great"], dim=3)
    path = _write(tmp_path / "v.txt", [(w, v[w]) for w in ["The", "the", "FILM", "Film", "Great"]])
    words = {w: i for i, w in enumerate(VOCAB)}
    found, _, folded = read_vectors(path, words, lowercase=True)
    np.testing.assert_allclose(found[words["the"]], v["the"], atol=1e-6)  # exact match, though "The" came first
    np.testing.assert_allclose(found[words["film"]], v["FILM"], atol=1e-6)  # first of two case variants
    np.testing.assert_allclose(found[words["great"]], v["Great"], atol=1e-6)
    assert folded == 2
    # a tokenizer that keeps case matches exact words only
    found, _, folded = read_vectors(path, words, lowercase=False)
    assert sorted(found) == [words["the"]] and folded == 0


def test_a_word_with_spaces_does_not_match_its_first_part(tmp_path: Path) -> None:
    v = _vectors(["the", "plot"], dim=3)
    lines = ["the end " + " ".join(["9.0"] * 3), "the " + " ".join(f"{x}" for x in v["the"]), "plot twist 1 2 3"]
    path = tmp_path / "glove840b-like.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found, dim, _ = read_vectors(path, {"the": 2, "plot": 6})
    assert dim == 3 and sorted(found) == [2]  # "the end" and "plot twist" are other words
    np.testing.assert_allclose(found[2], v["the"], atol=1e-6)


def test_embedding_rows_take_the_vectors_and_padding_stays_zero(tmp_path: Path) -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(len(VOCAB), 8, padding_idx=0)
    before = embedding.weight.detach().clone()
    vectors = _vectors(["film", "the", "nothing", "great", "plot"], dim=8)
    path = _write(tmp_path / "v.vec", vectors, header=True)
    coverage = load_pretrained(embedding, path, VOCAB, skip_ids=[1])
    assert (coverage.found, coverage.total, coverage.dim) == (4, 5, 8)  # of the, film, great, awful, plot
    assert coverage.percent == pytest.approx(80.0)
    assert coverage.message() == f"pretrained vectors: 4 of 5 vocabulary words (80.0 %) found in {path} (dim 8)"
    weight = embedding.weight.detach()
    for word in ("the", "film", "great", "plot"):
        torch.testing.assert_close(weight[VOCAB.index(word)], torch.from_numpy(vectors[word]))
    assert torch.all(weight[0] == 0)
    # missing words (and <unk>) keep their random direction, rescaled to the pretrained vectors' spread
    missing = [VOCAB.index("<unk>"), VOCAB.index("awful")]
    ratio = weight[missing] / before[missing]
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0, 0])))
    pretrained_std = np.stack([vectors[w] for w in ("the", "film", "great", "plot")]).std(ddof=1)
    assert float(weight[missing].std()) == pytest.approx(pretrained_std, rel=1e-4)


def test_freeze_leaves_the_embedding_out_of_the_optimizer() -> None:
    for model in (TextCNN(vocab_size=20, num_classes=2), MLP(vocab_size=20, num_classes=2, ngram_buckets=16)):
        module = TextClassifier(model=model, label_names=["a", "b"], freeze_embeddings=True)
        module.setup("fit")
        assert not model.embedding.weight.requires_grad
        params = [p for group in parameter_groups(model, decay_embeddings=True) for p in group["params"]]
        assert all(p is not model.embedding.weight for p in params)
        assert len(params) == sum(1 for p in model.parameters() if p is not model.embedding.weight)


def test_a_network_without_embedding_is_refused() -> None:
    with pytest.raises(ValueError, match=r"--model.pretrained_embeddings needs a network with an `embedding`"):
        TextClassifier(model=nn.Linear(3, 2), label_names=["a", "b"], pretrained_embeddings="v.txt")
    with pytest.raises(ValueError, match=r"--model.freeze_embeddings needs .* Linear has none"):
        TextClassifier(model=nn.Linear(3, 2), label_names=["a", "b"], freeze_embeddings=True)


def _error(tmp_path: Path, content: bytes | None, name: str = "v.txt", dim: int = 4, vocab=VOCAB) -> str:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_pretrained(nn.Embedding(len(vocab), dim, padding_idx=0), path, vocab, lowercase=True, skip_ids=[1])
    message = str(info.value)
    assert "\n" not in message
    if any(part in message for part in ("does not exist", "directory", "-dimensional", "is empty")):
        # the quick first-line check the CLI makes before a fit starts finds the same problems
        with pytest.raises(DataError, match="^" + re.escape(message) + "$"):
            check_vectors_file(path, dim)
    return message


def test_errors_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    row = " ".join(["0.5"] * 4)
    assert "does not exist" in _error(tmp_path, None, "absent.vec")
    (tmp_path / "folder").mkdir()
    assert "is a directory" in _error(tmp_path, None, "folder")
    message = _error(tmp_path, b"3 300\nthe " + b" ".join([b"0.1"] * 300) + b"\n")
    assert "holds 300-dimensional vectors (its header)" in message
    assert "embedding_dim is 4" in message and "--model.model.init_args.embedding_dim 300" in message
    assert "holds 2-dimensional vectors (its first line)" in _error(tmp_path, b"the 0.1 0.2\nfilm 0.3 0.4\n")
    # a vocabulary word's line is parsed; another line is checked for its field count
    message = _error(tmp_path, f"the {row}\nfilm 0.1 zero 0.3 0.4\n".encode())
    assert message.startswith(f"{tmp_path / 'v.txt'}:2: malformed line 'film 0.1 zero 0.3 0.4'")
    message = _error(tmp_path, f"the {row}\nx {row}\nother 0.1 0.2\n".encode())
    assert message.startswith(f"{tmp_path / 'v.txt'}:3: malformed line 'other 0.1 0.2'")
    assert "NaN or infinite" in _error(tmp_path, f"the {row}\nplot 0.1 nan 0.3 0.4\n".encode())
    assert "is empty" in _error(tmp_path, b"\n")
    message = _error(tmp_path, f"zebra {row}\nTheir {row}\n".encode())
    assert "none of the 5 vocabulary words has a vector in" in message
    broken = gzip.compress(f"the {row}\n".encode() * 5000)[:-40]
    assert "broken gzip data" in _error(tmp_path, broken, "v.txt.gz")
    binary = b"2 4\nthe \x93\x01\x9a\xff\x00\x00\x80\x3f\x10\n"
    assert "binary word2vec" in _error(tmp_path, binary, "w2v.bin")
