"""Unit tests for the embedded synthetic demo dataset."""

import collections
from collections.abc import Callable, Hashable

import pyarrow as pa
import pytest

from textcls.data.synthetic import _INTENSIFIERS, _NEGATIVE, _POSITIVE, DEMO_LABELS, make_demo_splits

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def demo() -> dict[str, pa.Table]:
    return make_demo_splits(seed=0)


def test_deterministic_for_a_seed(demo: dict[str, pa.Table]) -> None:
    again = make_demo_splits(seed=0)
    for split in SPLITS:
        assert demo[split].equals(again[split])


def test_different_seed_gives_different_data(demo: dict[str, pa.Table]) -> None:
    other = make_demo_splits(seed=1)
    assert not demo["train"].equals(other["train"])


def test_sizes_and_columns(demo: dict[str, pa.Table]) -> None:
    assert set(demo) == set(SPLITS)
    assert [demo[s].num_rows for s in SPLITS] == [20000, 2500, 2500]
    for table in demo.values():
        assert table.schema == pa.schema([("text", pa.string()), ("label", pa.string())])
    small = make_demo_splits(seed=3, train_size=50, val_size=7, test_size=0)
    assert [small[s].num_rows for s in SPLITS] == [50, 7, 0]


def test_all_labels_present_and_balanced(demo: dict[str, pa.Table]) -> None:
    for split in SPLITS:
        counts = collections.Counter(demo[split]["label"].to_pylist())
        assert set(counts) == set(DEMO_LABELS), split
        assert min(counts.values()) >= 0.15 * demo[split].num_rows, (split, counts)


def test_no_sentence_shared_across_splits(demo: dict[str, pa.Table]) -> None:
    train = set(demo["train"]["text"].to_pylist())
    validation = demo["validation"]["text"].to_pylist()
    test = demo["test"]["text"].to_pylist()
    assert not train & set(test)
    assert not train & set(validation)
    assert not set(validation) & set(test)
    assert len(set(test)) == len(test)


def test_text_format(demo: dict[str, pa.Table]) -> None:
    for text in demo["train"]["text"].to_pylist()[:500]:
        assert text == text.lower()
        assert text.split(" ")[-1] == "."
        assert "  " not in text and "," not in text.replace(" , ", "")


def _sentiment_tokens(text: str) -> list[str]:
    """What a text says about sentiment, with adjectives reduced to their polarity and neutral words dropped."""
    keep = {"not", "but", "and", *_INTENSIFIERS}
    polarity = {**{w: "POS" for w in _POSITIVE}, **{w: "NEG" for w in _NEGATIVE}}
    return [polarity.get(w, w) for w in text.split() if w in polarity or w in keep]


def _best_accuracy(texts: list[str], labels: list[str], key: Callable[[str], Hashable]) -> float:
    """Accuracy of the best possible classifier that only sees ``key(text)``: majority label per key."""
    groups: dict[Hashable, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for text, label in zip(texts, labels, strict=True):
        groups[key(text)][label] += 1
    return sum(c.most_common(1)[0][1] for c in groups.values()) / len(texts)


def test_labels_depend_on_word_order(demo: dict[str, pa.Table]) -> None:
    texts, labels = demo["train"]["text"].to_pylist(), demo["train"]["label"].to_pylist()
    # Subjects, verbs, fillers and the choice of adjective within a polarity carry no label information,
    # so the sorted sentiment tokens bound what any bag-of-words model can learn; in order they decide the label.
    bag = _best_accuracy(texts, labels, lambda t: tuple(sorted(_sentiment_tokens(t))))
    ordered = _best_accuracy(texts, labels, lambda t: tuple(_sentiment_tokens(t)))
    assert bag < 0.70, f"a bag of words could reach {bag:.2f} accuracy; word order should matter more"
    assert ordered > 0.95, f"even the ordered sentiment tokens only reach {ordered:.2f}; labels look too noisy"


def test_same_bag_different_labels_pairs(demo: dict[str, pa.Table]) -> None:
    texts, labels = demo["train"]["text"].to_pylist(), demo["train"]["label"].to_pylist()
    groups: dict[tuple[str, ...], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for text, label in zip(texts, labels, strict=True):
        groups[tuple(sorted(_sentiment_tokens(text)))][label] += 1
    conflicting_pairs = sum((sum(c.values()) ** 2 - sum(n * n for n in c.values())) // 2 for c in groups.values())
    assert conflicting_pairs >= 100
