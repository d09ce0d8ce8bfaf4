"""`textcls serve`: its options (parsed from `serve`'s signature, like `textcls export`) and its error line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape

from textcls.errors import UserError, user_error
from textcls.serve.validation import Limits

err_console = Console(stderr=True, highlight=False)


def serve(
    ckpt_path: str | None = None,
    model_dir: str | None = None,
    backend: Literal["torch", "onnx"] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 32,
    batch_timeout: float = 0.005,
    workers: int = 1,
    threads: int | None = None,
    max_texts: int = 256,
    max_body_bytes: int = 1_000_000,
    api_key_env: str | None = None,
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning",
) -> None:
    """Serve a trained classifier over HTTP: POST /predict, GET /health, GET /info, a page to try it at /.

    Args:
        ckpt_path: a .ckpt file written by `textcls fit`.
        model_dir: or a directory written by `textcls export` (served with ONNX Runtime; needs no torch).
        backend: torch or onnx; default torch for --ckpt_path (onnx exports it first), onnx for --model_dir.
        host: address to listen on: 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface).
        port: TCP port, 1024-65535.
        max_batch_size: requests that share one forward pass (dynamic batching); 1 switches batching off.
        batch_timeout: seconds a batch waits for more requests before it runs.
        workers: inference worker processes, each with its own copy of the model (and one HTTP process each).
        threads: intra-op threads per worker (torch or ONNX Runtime); unset uses every core. On a machine shared
            with other work, 1 avoids the cost of threads waiting for each other.
        max_texts: most texts one request may send in "texts".
        max_body_bytes: largest request body, in bytes.
        api_key_env: name of an environment variable that holds an API key; requests must then send it
            (X-API-Key header). The key itself is never taken from the command line.
        log_level: LitServe's and uvicorn's logging (info adds a line per request).
    """
    from textcls.serve.server import ServeConfig, run

    if (ckpt_path is None) == (model_dir is None):
        raise user_error("pass exactly one of --ckpt_path and --model_dir", "textcls serve", "see textcls serve --help")
    if model_dir is not None and backend == "torch":
        raise user_error(
            "an export directory holds no PyTorch weights", "--backend torch", "serve --ckpt_path with it instead"
        )
    chosen = backend or ("onnx" if model_dir is not None else "torch")
    if host not in ("127.0.0.1", "0.0.0.0", "::"):
        raise user_error(f"cannot listen on {host!r}", "--host", "use 127.0.0.1 (this machine only), 0.0.0.0 or ::")
    _at_least(port, 1024, "--port", 65535)
    _at_least(max_batch_size, 1, "--max_batch_size")
    _at_least(workers, 1, "--workers")
    if threads is not None:
        _at_least(threads, 1, "--threads")
    _at_least(max_texts, 1, "--max_texts")
    _at_least(max_body_bytes, 1, "--max_body_bytes")
    if not batch_timeout >= 0:
        raise user_error(f"batch_timeout must be 0 or more seconds, got {batch_timeout}", "--batch_timeout")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise user_error(f"checkpoint '{ckpt_path}' does not exist or is not a file", "--ckpt_path", "pass a .ckpt")
    config = ServeConfig(
        backend=chosen,
        path=str(model_dir if model_dir is not None else ckpt_path),
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
        workers=workers,
        threads=threads,
        limits=Limits(max_texts=max_texts, max_body_bytes=max_body_bytes),
        api_key=_api_key(api_key_env),
        log_level=log_level,
    )
    run(config, ckpt_for_onnx=ckpt_path if chosen == "onnx" and ckpt_path is not None else None)


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    key = os.environ.get(env_name, "")
    if not key.strip():
        raise user_error(
            f"environment variable {env_name} is unset or empty", "--api_key_env", f"export {env_name}=<key> first"
        )
    return key.strip()


def _at_least(value: int, low: int, option: str, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise user_error(f"{option.lstrip('-')} must be {bounds}, got {value}", option)


def main(argv: list[str] | None = None) -> None:
    """`textcls serve ...` (argv without the word `serve`)."""
    from jsonargparse import auto_cli

    args = list(sys.argv[2:] if argv is None else argv)
    try:
        auto_cli(serve, args=args, as_positional=False, prog="textcls serve")
    except UserError as err:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", soft_wrap=True)
        raise SystemExit(2) from None
