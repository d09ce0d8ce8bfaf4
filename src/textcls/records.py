"""The shape of a prediction, shared by the Python API and the server (plain Python: no torch needed)."""

from __future__ import annotations

from collections.abc import Sequence


def prediction_records(probs: Sequence[Sequence[float]], names: Sequence[str], top_k: int | None = None) -> list[dict]:
    """Per text: the most probable label, its probability, and every label's (or the `top_k` most probable)."""
    num_classes = len(names)
    records = []
    for row in probs:
        best = max(range(num_classes), key=row.__getitem__)
        if top_k is None:
            shown = dict(zip(names, row, strict=True))
        else:
            order = sorted(range(num_classes), key=lambda i: -row[i])[:top_k]
            shown = {names[i]: row[i] for i in order}
        records.append({"label": names[best], "probability": row[best], "probabilities": shown})
    return records
