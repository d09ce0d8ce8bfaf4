"""The server's front door, in front of LitServe's routes: the page, the API key, body limits and request checks.

A plain ASGI middleware, so it sees the raw bytes: an oversized, non-UTF-8 or malformed body, or a client that goes
away mid-body, is answered (4xx with `{"error": ...}`) before FastAPI or LitServe ever parse it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from textcls.serve.tasks import Task
from textcls.serve.validation import Limits, RequestError, parse_predict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREDICT_PATH = "/predict"
# The page, /health and the OpenAPI docs hold nothing about the model; everything else needs the key when one is set.
OPEN_PATHS = ("/", "/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
logger = logging.getLogger("textcls.serve")


class ClientGone(Exception):
    """The client closed the connection before its request body was complete."""


class Gateway:
    """ASGI middleware for LitServe's FastAPI app (`LitServer(middlewares=[(Gateway, {...})])`).

    Args:
        app: the wrapped ASGI app.
        task: the model's task (its labels bound `top_k`; it says whether `threshold` is accepted).
        limits: `--max_texts` and `--max_body_bytes`.
        page: the HTML of `GET /`.
        api_key: when set, requests outside OPEN_PATHS must carry it (`X-API-Key` or `Authorization: Bearer`).
    """

    def __init__(self, app: Any, task: Task, limits: Limits, page: bytes, api_key: str | None = None) -> None:
        self.app = app
        self.task = task
        self.limits = limits
        self.page = page
        self._key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/" and method in ("GET", "HEAD"):
            await _respond(send, 200, self.page, b"text/html; charset=utf-8", head=method == "HEAD")
            return
        if self._key is not None and path not in OPEN_PATHS and not self._authorized(scope):
            message = "missing or wrong API key: send it in the X-API-Key header (or Authorization: Bearer <key>)"
            await send_error(send, 401, message)
            return
        if path == PREDICT_PATH and method == "POST":
            await self._predict(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                raise RequestError(
                    413, f"the body has {int(declared)} bytes, more than --max_body_bytes {self.limits.max_body_bytes}"
                )
            body = await _read_body(receive, self.limits.max_body_bytes)
            parse_predict(body, self.limits, self.task)
        except RequestError as err:
            await send_error(send, err.status, err.message)
            return
        except ClientGone:
            # Nobody is left to read an answer; 400 keeps the access log honest, and the server carries on.
            logger.info("client disconnected before sending the whole request body")
            await send_error(send, 400, "the client disconnected before the request body was complete")
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        replayed = False

        async def replay() -> Message:
            # The body once, as read; after that the real channel, which tells of a disconnect.
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self._key is not None
        given = _header(scope, b"x-api-key")
        if given is None:
            bearer = _header(scope, b"authorization") or ""
            given = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        return given is not None and hmac.compare_digest(given.encode(), self._key)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body has more than --max_body_bytes {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    await _respond(send, status, body, b"application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, head: bool = False) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
