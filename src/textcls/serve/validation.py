"""Checking a `POST /predict` body before it reaches the model, with a message that names the problem.

This runs in the HTTP process, before a request joins a dynamic batch: LitServe fails a whole batch when one of its
requests fails to decode, so a hostile request must be turned away here, where it costs only its own answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from textcls.serve.tasks import Task

FIELDS = ("text", "texts", "top_k", "threshold")
EXAMPLE = '{"text": "a great film"} or {"texts": ["a great film", "dull"]}'


class RequestError(Exception):
    """A request the server turns away: an HTTP status (4xx) and a message for the `error` field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_texts: int
    max_body_bytes: int


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    top_k: int | None = None
    threshold: float | None = None


def parse_predict(body: bytes, limits: Limits, task: Task) -> PredictRequest:
    """The request in `body`, or a `RequestError` (400 unreadable, 413 too large, 422 well-formed but wrong)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"the body has {len(body)} bytes, more than --max_body_bytes {limits.max_body_bytes}")
    if not body.strip():
        raise RequestError(400, f"the body is empty; send JSON such as {EXAMPLE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {err.start}: {err.reason})") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise RequestError(400, f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except ValueError as err:
        raise RequestError(400, f"malformed JSON: {err}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"the body must be a JSON object, got {_kind(payload)}; send {EXAMPLE}")
    unknown = [key for key in payload if key not in FIELDS]
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    if ("text" in payload) == ("texts" in payload):
        raise RequestError(422, f"send exactly one of 'text' (a string) and 'texts' (a list of strings): {EXAMPLE}")
    texts = [_text(payload["text"], "'text'")] if "text" in payload else _texts(payload["texts"], limits.max_texts)
    return PredictRequest(texts, _top_k(payload.get("top_k"), task), _threshold(payload.get("threshold"), task))


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RequestError(422, f"{name} must be a string, got {_kind(value)}")
    if not value.strip():
        raise RequestError(422, f"{name} is empty or only whitespace; send some text to classify")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate escape such as "\ud800" is valid JSON but not text
        raise RequestError(422, f"{name} holds an unpaired surrogate at character {err.start}") from None
    return value


def _texts(value: Any, max_texts: int) -> list[str]:
    if not isinstance(value, list):
        raise RequestError(422, f"'texts' must be a list of strings, got {_kind(value)}")
    if not value:
        raise RequestError(422, "'texts' is an empty list; send at least one text")
    if len(value) > max_texts:
        raise RequestError(413, f"'texts' has {len(value)} texts, more than --max_texts {max_texts}; split the request")
    return [_text(item, f"texts[{i}]") for i, item in enumerate(value)]


def _top_k(value: Any, task: Task) -> int | None:
    if value is None:
        return None
    num_labels = len(task.label_names)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= num_labels:
        raise RequestError(422, f"'top_k' must be an integer from 1 to {num_labels} (the labels), got {value!r}")
    return value


def _threshold(value: Any, task: Task) -> float | None:
    if value is None:
        return None
    if not task.accepts_threshold:
        raise RequestError(
            422,
            f"'threshold' applies to multi-label models only; this model is {task.name.replace('_', '-')} "
            "(the most probable label wins): leave it out",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise RequestError(422, f"'threshold' must be a number from 0 to 1, got {value!r}")
    return float(value)


def _reject_constant(name: str) -> float:
    # json accepts NaN and Infinity, which are not JSON and not meaningful in a request.
    raise ValueError(f"{name} is not a JSON value")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
