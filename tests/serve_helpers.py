"""`textcls serve` as a real subprocess on 127.0.0.1 for the serving tests, and plain HTTP to talk to it.

Every server is started in its own process group and always stopped: SIGTERM first, then SIGKILL for the group, so a
failing test leaves no worker behind.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import TEXTCLS

# Start-up: torch's import, then the model loaded in the main process and again in the worker; slow on a busy machine.
START_TIMEOUT = 180.0
_CHECKPOINTS: dict[str, Path] = {}


def tiny_checkpoint(tmp_path_factory: Any, name: str = "textcnn") -> Path:
    """One small trained checkpoint per test session, shared by the serving test modules."""
    if name not in _CHECKPOINTS:
        from trained_checkpoints import train_checkpoint

        extra = {"textcnn": ["--model.model.init_args.embedding_dim", "16", "--model.model.init_args.num_filters", "8"]}
        _CHECKPOINTS[name] = train_checkpoint(tmp_path_factory.mktemp(f"serve-{name}"), name, *extra.get(name, []))
    return _CHECKPOINTS[name]


def tiny_export(tmp_path_factory: Any) -> Path:
    """`textcls export` of the session's checkpoint (an ONNX directory), made once and shared."""
    if "export" not in _CHECKPOINTS:
        from textcls.export import export

        checkpoint = tiny_checkpoint(tmp_path_factory)
        _CHECKPOINTS["export"] = export(str(checkpoint), str(tmp_path_factory.mktemp("serve-export") / "model"))
    return _CHECKPOINTS["export"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """`textcls serve ARGS --port P` in a subprocess; stdout and stderr go to files in `workdir`."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None, key: str | None = None) -> None:
        self.port = free_port()
        self.key = key
        workdir.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = workdir / "server.out", workdir / "server.err"
        self._out, self._err = self.out_path.open("wb"), self.err_path.open("wb")
        self.process = subprocess.Popen(
            [TEXTCLS, "serve", *args, "--port", str(self.port)],
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: Ctrl-C can be sent to it alone, and cleanup is total
        )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.stderr[-3000:]}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s: {self.stderr[-3000:]}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        use_key: bool = True,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text). `body`: bytes as they are, anything else as JSON."""
        sent = {"X-API-Key": self.key} if self.key and use_key else {}
        headers = {**sent, **(headers or {})}
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
        finally:
            connection.close()
        kind = answer.getheader("content-type") or ""
        return answer.status, json.loads(raw) if kind.startswith("application/json") else raw.decode()

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kwargs)

    def predict(self, body: Any, **kwargs: Any) -> tuple[int, Any]:
        return self.request("POST", "/predict", body, **kwargs)

    def pids(self) -> list[int]:
        """The server's main process and every process below it (HTTP servers, workers, LitServe's manager)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def group(self) -> list[int]:
        """Processes still alive in the server's process group (its workers included, even once orphaned)."""
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid and fields[0] != "Z":
                alive.append(int(stat.parent.name))
        return alive

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` to the main process and wait for it; the group is killed if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this server started (start_new_session)
        if self.process.poll() is None:
            self.process.wait(timeout=30)
        self._out.close()
        self._err.close()


def mapped_libraries(pid: int) -> set[str]:
    """File names of the shared libraries a process has loaded (from /proc/PID/maps)."""
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return set()
    return {Path(line.split()[-1]).name for line in lines if ".so" in line}


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """A Chromium executable on PATH (Debian's `chromium`, installed by `make test` when running as root)."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Browser:
    """Headless Chromium driven over the DevTools protocol: one page, commands sent over its websocket."""

    def __init__(self, executable: str, workdir: Path, width: int = 900, height: int = 760) -> None:
        from websockets.sync.client import connect

        profile = workdir / "chromium-profile"
        self.process = subprocess.Popen(
            [
                executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                f"--window-size={width},{height}", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self._stack = contextlib.ExitStack()
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.loads(answer.read())
            page = next(t for t in targets if t.get("type") == "page")
            self.socket = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        except BaseException:
            self.close()
            raise
        self._next_id = 0

    def _devtools_port(self, path: Path, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode}")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port")

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Run one DevTools command and return its result (events that arrive meanwhile are skipped)."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type `text` as keyboard input (input events, as a user's typing fires)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this browser started (start_new_session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


@contextlib.contextmanager
def all_ready(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    """`servers` once each answers, stopped when the block ends (whatever happens in it)."""
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
