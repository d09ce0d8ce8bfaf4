"""Starting and stopping the server: the model checked before anything listens, LitServe wired up, a graceful stop.

Process layout (LitServe's): this main process, one HTTP (uvicorn) process per inference worker, forked, and the
inference workers, spawned, each loading the model. A stop (SIGTERM, or Ctrl-C) lets the HTTP processes finish the
requests in flight, with the workers still running, before the workers are stopped; then the main process exits 0.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

import textcls
from textcls.errors import user_error
from textcls.serve.backends import INSTALL_SERVE, ModelInfo, load_backend
from textcls.serve.tasks import task_for
from textcls.serve.validation import Limits

console = Console(highlight=False)
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the addresses LitServe binds
# How long the main process waits for the first worker to load the model before it says so.
READY_TIMEOUT = 600.0


@dataclass(frozen=True)
class ServeConfig:
    backend: str  # "torch" or "onnx"
    path: str  # the checkpoint (torch) or export directory (onnx) the workers load
    host: str
    port: int
    max_batch_size: int
    batch_timeout: float
    workers: int
    threads: int | None
    limits: Limits
    api_key: str | None
    log_level: str


def run(config: ServeConfig, ckpt_for_onnx: str | None = None) -> None:
    """Serve until stopped. `ckpt_for_onnx`: export this checkpoint first and serve the export with ONNX Runtime."""
    _check_port_free(config.host, config.port)
    with tempfile.TemporaryDirectory(prefix="textcls-serve-") as scratch:
        if ckpt_for_onnx is not None:
            from textcls.export import export

            export(ckpt_for_onnx, str(Path(scratch) / "export"))
            config = replace(config, path=str(Path(scratch) / "export"))
        info = load_backend(config.backend, config.path).info  # bad files fail here, before anything listens
        server = _build(config, info)
        _serve(server, config, info)


def _build(config: ServeConfig, info: ModelInfo) -> Any:
    try:
        import litserve as ls
    except ImportError:
        raise user_error("textcls serve needs LitServe", None, INSTALL_SERVE) from None
    from textcls.serve.api import ClassifierAPI
    from textcls.serve.gateway import Gateway

    task = task_for(info.task, info.label_names, info.thresholds, info.outputs)
    metadata = {
        **asdict(info),
        "textcls_version": textcls.__version__,
        "max_texts": config.limits.max_texts,
        "max_body_bytes": config.limits.max_body_bytes,
        "max_batch_size": config.max_batch_size,
        "batch_timeout": config.batch_timeout,
        "threads_per_worker": config.threads,
    }
    page = render_page(metadata, key_required=config.api_key is not None)
    gateway = {"task": task, "limits": config.limits, "page": page, "api_key": config.api_key}
    api = ClassifierAPI(config.backend, config.path, config.max_batch_size, config.batch_timeout, config.threads)
    server = ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=config.workers,
        model_metadata=metadata,
        middlewares=[(Gateway, gateway)],
    )
    _json_errors(server.app)
    return server


def _serve(server: Any, config: ServeConfig, info: ModelInfo) -> None:
    url = f"http://{'[::1]' if config.host == '::' else '127.0.0.1' if config.host == '0.0.0.0' else config.host}"
    url += f":{config.port}"
    model = info.source.get("model", "ONNX model").rsplit(".", 1)[-1]
    console.print(
        f"textcls serve: {model} ({info.backend}), labels {', '.join(info.label_names)}; "
        f"loading {config.workers} worker(s) for {url}",
        soft_wrap=True,
    )
    stopping = threading.Event()
    main_pid = os.getpid()

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:  # a forked child (HTTP server, manager) inherited this: act as if it had none
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if stopping.is_set():
            return
        stopping.set()
        console.print("Stopping: answering the requests in flight, then exiting.", soft_wrap=True)
        # LitServe waits on this manager event in run(); setting it from another thread (a proxy call inside a signal
        # handler would interleave with the main thread's own wait on the same connection) starts its shutdown,
        # which ends the HTTP processes first and the workers after them. LitServe itself has no SIGTERM handling.
        event = getattr(server, "_shutdown_event", None)
        if event is None:  # still starting: nothing is serving yet
            signal.default_int_handler(signum, frame)
        threading.Thread(target=event.set, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    threading.Thread(target=_announce_when_ready, args=(url, stopping), daemon=True).start()
    try:
        server.run(
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            generate_client_file=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        for child in multiprocessing.active_children():  # only left over if stopped during start-up
            child.terminate()
            child.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("Stopped.")


def _announce_when_ready(url: str, stopping: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not stopping.is_set():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    ready = f"Ready: {url}  (try it: {url}/ ; API: POST {url}/predict ; docs: {url}/docs)"
                    console.print(ready, soft_wrap=True)
                    return
        except OSError:
            pass
        time.sleep(0.2)


def render_page(metadata: dict[str, Any], key_required: bool) -> bytes:
    html = resources.files("textcls.serve").joinpath("page.html").read_text(encoding="utf-8")
    settings = {"keyRequired": key_required, "labels": metadata["label_names"], "maxTexts": metadata["max_texts"]}
    # "</" never appears inside the inline script, whatever the label names hold
    return html.replace("/*SETTINGS*/null", json.dumps(settings).replace("</", "<\\/")).encode()


def _json_errors(app: Any) -> None:
    """FastAPI's and LitServe's own errors (404, 405, 504, a 500) as `{"error": ...}`, like the gateway's."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def http_error(request: Any, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def invalid_body(request: Any, exc: RequestValidationError) -> JSONResponse:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        return JSONResponse({"error": f"{where or 'body'}: {problem.get('msg', 'invalid')}"}, status_code=422)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_body)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            problem = f"cannot listen on {host}:{port} ({err.strerror})"
            raise user_error(problem, "--port", "pass another --port or stop the server using it") from None
