"""A small, embedded, deterministic movie-review dataset whose labels depend on word order.

Sentences are one or two clauses such as ``the plot was not very good , but the acting was superb .``.
Each clause has a polarity (the adjective's sign, flipped by ``not``) and a strength (an intensifier
without ``not`` makes it "very"). In ``X , but Y`` the second clause decides the label, so the same bag
of words can carry opposite labels (``not good , but great`` vs ``good , but not great``): a unigram
bag-of-words model plateaus well below a model that sees short n-grams in order.
"""

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

DEMO_LABELS: tuple[str, ...] = ("very negative", "negative", "positive", "very positive")

# fmt: off
_POSITIVE = (
    "good", "great", "superb", "excellent", "wonderful", "brilliant", "amazing", "fantastic", "terrific",
    "delightful", "charming", "enjoyable", "engaging", "gripping", "moving", "clever", "beautiful", "stunning",
    "impressive", "memorable", "fun", "funny", "fresh", "thrilling", "powerful", "compelling", "solid", "strong",
    "elegant", "touching", "witty", "inspired", "captivating", "lovely", "refreshing", "satisfying", "riveting",
    "masterful", "heartfelt", "original"
)
_NEGATIVE = (
    "bad", "terrible", "awful", "horrible", "dreadful", "boring", "dull", "tedious", "weak", "poor", "bland",
    "lifeless", "clumsy", "messy", "awkward", "forgettable", "predictable", "shallow", "silly", "stupid",
    "annoying", "confusing", "pointless", "lazy", "flat", "tiresome", "painful", "disappointing", "mediocre",
    "uninspired", "derivative", "sloppy", "hollow", "stale", "laughable", "overlong", "pretentious", "incoherent",
    "unbearable", "sluggish"
)
_INTENSIFIERS = ("very", "extremely", "really")
_SUBJECTS = (
    "the film", "this movie", "the plot", "the acting", "the soundtrack", "the script", "the ending",
    "the dialogue", "the cast", "the pacing", "the story", "the direction", "the cinematography",
    "the lead actor", "the humor", "the editing", "the first half", "the score",
)
# fmt: on
_VERBS = ("was", "is", "felt", "seemed")
_FILLERS = ("i think", "honestly", "to be fair", "overall", "in my opinion", "frankly", "to be honest", "admittedly")

# Mostly contrast sentences: they are the ones a bag of words cannot resolve.
_P_SINGLE, _P_AND = 0.15, 0.15
_P_OPENING_FILLER, _P_INNER_FILLER = 0.3, 0.25
_LABEL_NOISE = 0.02
# Chunked draws keep the per-row Python loop fast (one numpy call per 4096 numbers, not per choice).
_CHUNK = 4096


class _Draws:
    """Uniform [0, 1) numbers from one seeded generator, served one at a time."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._buffer: list[float] = []
        self._next = 0

    def uniform(self) -> float:
        if self._next == len(self._buffer):
            self._buffer = self._rng.random(_CHUNK).tolist()
            self._next = 0
        self._next += 1
        return self._buffer[self._next - 1]

    def chance(self, p: float) -> bool:
        return self.uniform() < p

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.uniform() * len(options))]

    def index(self, n: int) -> int:
        return int(self.uniform() * n)


def _clause(draws: _Draws, positive: bool, strong: bool) -> str:
    """One ``subject verb [not] [intensifier] adjective`` clause with the requested polarity and strength."""
    negated, intensified = False, strong
    if not strong:
        # the mild forms: "good", "not bad", "not very bad" (equally often)
        form = draws.index(3)
        negated, intensified = form > 0, form == 2
    adjective_positive = positive != negated
    words = [draws.pick(_SUBJECTS), draws.pick(_VERBS)]
    if negated:
        words.append("not")
    if intensified:
        words.append(draws.pick(_INTENSIFIERS))
    words.append(draws.pick(_POSITIVE if adjective_positive else _NEGATIVE))
    return " ".join(words)


def _sentence(draws: _Draws, label: int) -> str:
    """A sentence whose (noise-free) label is ``DEMO_LABELS[label]``."""
    positive, strong = label >= 2, label in (0, 3)
    parts = []
    if draws.chance(_P_OPENING_FILLER):
        parts.append(draws.pick(_FILLERS) + " ,")
    kind = draws.uniform()
    if kind < _P_SINGLE:
        parts.append(_clause(draws, positive, strong))
    elif kind < _P_SINGLE + _P_AND:
        # "and" joins clauses that agree in polarity and strength
        parts += [_clause(draws, positive, strong), "and", _clause(draws, positive, strong)]
    else:
        # the first clause contrasts (opposite polarity, any strength); the second decides the label
        parts += [_clause(draws, not positive, draws.chance(0.5)), ", but"]
        if draws.chance(_P_INNER_FILLER):
            parts.append(draws.pick(_FILLERS))
        parts.append(_clause(draws, positive, strong))
    parts.append(".")
    return " ".join(parts)


def _rows(draws: _Draws, size: int, used: set[str], allow_repeats: bool) -> tuple[list[str], list[str]]:
    """Draw ``size`` (text, label) rows; unless ``allow_repeats``, skip texts in ``used`` and add new ones to it."""
    texts: list[str] = []
    labels: list[str] = []
    attempts = 0
    while len(texts) < size:
        attempts += 1
        if attempts > 50 * size + 1000:
            raise RuntimeError(f"could not draw {size} sentences unseen in earlier splits; ask for fewer rows")
        label = draws.index(len(DEMO_LABELS))
        text = _sentence(draws, label)
        if not allow_repeats and text in used:
            continue
        used.add(text)
        if draws.chance(_LABEL_NOISE):
            # noise always picks a different label, so the noisy share is exactly what _LABEL_NOISE says
            label = (label + 1 + draws.index(len(DEMO_LABELS) - 1)) % len(DEMO_LABELS)
        texts.append(text)
        labels.append(DEMO_LABELS[label])
    return texts, labels


def make_demo_splits(
    seed: int = 0, train_size: int = 20000, val_size: int = 2500, test_size: int = 2500
) -> dict[str, pa.Table]:
    """Generate the demo dataset as ``{"train", "validation", "test"}`` tables with string ``text`` and ``label``.

    The same seed gives identical tables. All splits come from one random stream; validation and test
    sentences never repeat a sentence from an earlier split (or from themselves), train may repeat itself.
    About 2% of labels are replaced by a different label at random, so perfect accuracy is not reachable.
    """
    for name, size in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        if size < 0:
            raise ValueError(f"{name} must be >= 0, got {size}")
    draws = _Draws(seed)
    used: set[str] = set()
    splits = {}
    for split, size in (("train", train_size), ("validation", val_size), ("test", test_size)):
        texts, labels = _rows(draws, size, used, allow_repeats=split == "train")
        splits[split] = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())})
    return splits
