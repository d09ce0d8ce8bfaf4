"""`textcls serve` as a real server subprocess on 127.0.0.1: answers, hostile requests, API key, start-up errors, stop.

Two servers are shared by most tests: the checkpoint with PyTorch (API key on, small limits) and its export with
ONNX Runtime. Both use dynamic batching, so concurrent requests share forward passes.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import TEXTCLS, one_error_line
from serve_helpers import Server, all_ready, free_port, listening, mapped_libraries, tiny_checkpoint, tiny_export

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KEY_ENV = "TEXTCLS_SERVE_TEST_KEY"
KEY = "k-" + secrets.token_hex(12)
MAX_TEXTS, MAX_BODY = 16, 20_000
TEXTS = [
    "the film was great number3",
    "dull",
    "THE FILM WAS AWFUL, and the plot was bad; boring from start to end!",
    "the film was superb " * 80,  # 320 tokens: truncated to the checkpoint's max_length (256) like `predict` does
    "words never seen in training",
    "naïve café, ÉTÉ – 映画 😀",
    "the film <pad> was <unk> lovely",
    "  lovely  ",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def classifier(checkpoint):
    from textcls.inference import load_classifier

    return load_classifier(checkpoint)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tiny_export(tmp_path_factory)


@pytest.fixture(scope="module")
def servers(checkpoint, export_dir, tmp_path_factory):
    # Both start at once: their start-ups (model loads, imports) overlap.
    started = {
        "torch": Server(
            tmp_path_factory.mktemp("torch-server"),
            "--ckpt_path", str(checkpoint), "--max_texts", str(MAX_TEXTS), "--max_body_bytes", str(MAX_BODY),
            "--api_key_env", KEY_ENV, "--log_level", "info",
            env={KEY_ENV: KEY}, key=KEY,
        ),
        # two workers: requests are spread over two model copies and two HTTP processes
        "onnx": Server(tmp_path_factory.mktemp("onnx-server"), "--model_dir", str(export_dir), "--workers", "2",
                       "--threads", "1"),
    }  # fmt: skip
    with all_ready(started):
        yield started


def _probabilities(records, names):
    return np.array([[r["probabilities"][n] for n in names] for r in records])


def _assert_same_records(got, expected):
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert list(g["probabilities"]) == list(e["probabilities"])  # same labels, same order
        np.testing.assert_allclose(list(g["probabilities"].values()), list(e["probabilities"].values()), atol=1e-6)
        assert g["probability"] == pytest.approx(e["probability"], abs=1e-6)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_single_texts_batches_and_top_k_match_the_python_api(servers, classifier, backend):
    server = servers[backend]
    status, answer = server.predict({"text": TEXTS[0]})
    assert status == 200 and list(answer) == ["predictions"]
    _assert_same_records(answer["predictions"], classifier.predict([TEXTS[0]]))

    status, answer = server.predict({"texts": TEXTS, "top_k": 1})
    assert status == 200
    _assert_same_records(answer["predictions"], classifier.predict(TEXTS, top_k=1))

    # One request per text, all at once: dynamic batching pads them together, and each answer is still its own.
    with ThreadPoolExecutor(len(TEXTS)) as pool:
        answers = list(pool.map(lambda t: server.predict({"text": t}), TEXTS))
    assert {status for status, _ in answers} == {200}
    _assert_same_records([a["predictions"][0] for _, a in answers], classifier.predict(TEXTS))


def test_answers_are_the_probabilities_of_textcls_predict(servers, classifier, checkpoint, tmp_path, capsys):
    from textcls.cli import main

    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    main(["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(lines),
          "--runs_root", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false"])  # fmt: skip
    (path,) = (tmp_path / "runs").glob("*/*-predict/predictions.csv")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    names = classifier.label_names
    expected = np.array([[float(r[f"p_{n}"]) for n in names] for r in rows])
    assert len(rows) == len(TEXTS)
    for backend, server in servers.items():
        status, answer = server.predict({"texts": TEXTS})
        assert status == 200, backend
        np.testing.assert_allclose(_probabilities(answer["predictions"], names), expected, atol=1e-6, err_msg=backend)
        assert [r["label"] for r in answer["predictions"]] == [r["label"] for r in rows], backend


def test_info_health_and_docs(servers, classifier, checkpoint, export_dir):
    torch_server, onnx_server = servers["torch"], servers["onnx"]
    status, info = torch_server.get("/info")
    model = info["model"]
    assert status == 200 and model["label_names"] == classifier.label_names and model["task"] == "single_label"
    assert model["max_length"] == classifier.max_length and model["backend"] == "torch"
    assert model["source"]["checkpoint"] == str(checkpoint.resolve()) and len(model["source"]["sha256"]) == 64
    assert model["textcls_version"] and model["max_texts"] == MAX_TEXTS
    status, info = onnx_server.get("/info")
    model = info["model"]
    assert info["server"]["workers_per_device"] == 2 and model["threads_per_worker"] == 1
    assert model["backend"] == "onnx" and model["source"]["model_dir"] == str(export_dir.resolve())
    assert model["max_length"] == classifier.max_length and model["label_names"] == classifier.label_names
    status, spec = onnx_server.get("/openapi.json")
    assert status == 200 and "/predict" in spec["paths"] and "PredictBody" in json.dumps(spec)
    assert onnx_server.get("/docs")[0] == 200


def test_health_before_and_after_load(servers):
    server = servers["onnx"]
    assert server.get("/health") == (200, "ok")
    with ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(lambda i: server.predict({"texts": [f"the film was great number{i}"] * 3})[0], range(200))
        )
    assert statuses == [200] * 200
    assert server.get("/health") == (200, "ok")


HOSTILE = [
    ("malformed JSON", b'{"text": ', 400, "malformed JSON"),
    ("not JSON at all", b"text=hello", 400, "malformed JSON"),
    ("NaN", b'{"text": "x", "top_k": NaN}', 400, "NaN"),
    ("deep nesting", b"[" * 5000, 400, "malformed JSON"),
    ("invalid UTF-8", b'{"text": "caf\xe9"}', 400, "UTF-8"),
    ("empty body", b"", 400, "empty"),
    ("an array", [], 422, "JSON object"),
    ("no field", {}, 422, "exactly one of 'text'"),
    ("misspelled field", {"txt": "hello"}, 422, "unknown field 'txt'"),
    ("both fields", {"text": "a", "texts": ["b"]}, 422, "exactly one of"),
    ("text not a string", {"text": 5}, 422, "'text' must be a string, got a number"),
    ("texts not a list", {"texts": "abc"}, 422, "'texts' must be a list"),
    ("empty text", {"text": ""}, 422, "'text' is empty"),
    ("whitespace text", {"text": " \t\n "}, 422, "'text' is empty or only whitespace"),
    ("non-string in texts", {"texts": ["fine", None]}, 422, "texts[1] must be a string, got null"),
    ("blank in texts", {"texts": ["fine", "  "]}, 422, "texts[1] is empty"),
    ("empty texts", {"texts": []}, 422, "'texts' is an empty list"),
    ("too many texts", {"texts": ["good"] * (MAX_TEXTS + 1)}, 413, "--max_texts"),
    ("body too large", {"text": "good " * (MAX_BODY // 5)}, 413, "--max_body_bytes"),
    ("lone surrogate", b'{"text": "\\ud800 x"}', 422, "unpaired surrogate"),
    ("top_k too large", {"text": "good", "top_k": 3}, 422, "'top_k' must be an integer from 1 to 2"),
    ("top_k a boolean", {"text": "good", "top_k": True}, 422, "'top_k'"),
    (
        "threshold on a single-label model",
        {"text": "good", "threshold": 0.5},
        422,
        "'threshold' applies to multi-label",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), HOSTILE, ids=[case for case, *_ in HOSTILE])
def test_hostile_requests_get_a_4xx_naming_the_problem(servers, case, body, status, needle):
    server = servers["torch"]
    got, answer = server.predict(body)
    assert (got, list(answer)) == (status, ["error"]), answer
    assert needle in answer["error"]


def test_wrong_methods_and_paths_answer_json_errors(servers):
    server = servers["torch"]
    assert server.get("/predict") == (405, {"error": "Method Not Allowed"})
    assert server.get("/nowhere") == (404, {"error": "Not Found"})


def test_a_body_without_length_over_the_limit_and_a_client_that_leaves_mid_body(servers):
    server = servers["torch"]
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:  # chunked: no Content-Length
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b'{"texts": ["' + b"a" * 8000
        for _ in range(4):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        answer = _read_response(sock).decode()  # headers and body may arrive in separate segments
    assert answer.startswith("HTTP/1.1 413") and "--max_body_bytes" in answer
    for _ in range(3):  # promises 900 bytes, sends 20, hangs up
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall((head + "Content-Length: 900\r\n\r\n" + '{"text": "the film').encode())
    time.sleep(0.5)
    assert server.get("/health") == (200, "ok")
    assert server.predict({"text": "the film was great"})[0] == 200


def test_no_request_gave_a_500_or_a_traceback(servers):
    # Runs after the hostile tests in this module: every one of them was answered without an internal error.
    for server in servers.values():
        assert server.get("/health") == (200, "ok")
        log = server.stdout + server.stderr
        assert "Traceback" not in log and '" 500' not in log, log[-3000:]
    # the access log is on in the torch server (--log_level info), so a 500 would have shown
    assert '"POST /predict HTTP/1.1" 422' in servers["torch"].stdout + servers["torch"].stderr


def test_the_api_key_is_required_and_never_shown(servers):
    server = servers["torch"]
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        status, answer = server.predict({"text": "good"}, headers=headers, use_key=False)
        assert status == 401 and "API key" in answer["error"]
    assert server.get("/info", use_key=False)[0] == 401
    assert server.predict({"text": "good"}, headers={"Authorization": f"Bearer {KEY}"}, use_key=False)[0] == 200
    assert server.predict({"text": "good"})[0] == 200  # X-API-Key
    # open without the key: health for probes, the page (it asks for the key), the docs
    assert server.get("/health", use_key=False) == (200, "ok")
    assert server.get("/", use_key=False)[0] == 200 and server.get("/docs", use_key=False)[0] == 200
    assert KEY not in server.stdout + server.stderr and KEY not in json.dumps(server.get("/info")[1])
    assert KEY not in " ".join(server.process.args)


def test_the_onnx_server_never_loads_torch(servers):
    onnx_pids, torch_pids = servers["onnx"].pids(), servers["torch"].pids()
    assert len(onnx_pids) >= 5, onnx_pids  # main, 2 HTTP servers, 2 workers (and LitServe's manager)
    for pid in onnx_pids:
        libraries = mapped_libraries(pid)
        assert libraries, pid
        assert not any(name.startswith(("libtorch", "libc10")) for name in libraries), (pid, sorted(libraries))
    # the same check finds torch where it is loaded
    assert any(any(n.startswith("libtorch") for n in mapped_libraries(pid)) for pid in torch_pids)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_stop_answers_the_request_in_flight_then_exits_0(export_dir, tmp_path, how):
    server = Server(tmp_path, "--model_dir", str(export_dir))
    try:
        server.wait_ready()
        body = json.dumps({"texts": ["the film was great", "dull"]}).encode()
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            # Half the body is sent before the stop and the rest after it: the request is surely in flight.
            sock.sendall(head + body[:10])
            time.sleep(0.5)
            if how == "SIGTERM":
                server.process.send_signal(signal.SIGTERM)
            else:  # what a terminal does: SIGINT to every process of the foreground group
                os.killpg(server.process.pid, signal.SIGINT)
            time.sleep(1.0)
            sock.sendall(body[10:])
            answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert len(json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]) == 2
        assert server.process.wait(timeout=60) == 0, server.stderr[-3000:]
        assert "Traceback" not in server.stderr, server.stderr[-3000:]
        assert "Stopped." in server.stdout
        deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves once the main process is gone
        while server.group() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.group(), [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in server.group()]
    finally:
        server.kill()


def _read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(data):
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _serve_fails(tmp_path, *args):
    port = free_port()
    result = subprocess.run(
        [TEXTCLS, "serve", *args, "--port", str(port)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    line = one_error_line(result)
    assert not listening(port)
    return line


def test_start_up_errors_are_one_line_exit_2_and_nothing_listens(checkpoint, export_dir, tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(checkpoint.read_bytes()[:5000])
    assert "not a readable checkpoint" in _serve_fails(tmp_path, "--ckpt_path", str(broken))
    assert "does not exist" in _serve_fails(tmp_path, "--ckpt_path", str(tmp_path / "missing.ckpt"))

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model.onnx").write_bytes((export_dir / "model.onnx").read_bytes())
    assert "tokenizer.json, labels.json missing" in _serve_fails(tmp_path, "--model_dir", str(partial))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("tokenizer.json", "labels.json"):
        (corrupt / name).write_bytes((export_dir / name).read_bytes())
    (corrupt / "model.onnx").write_bytes(b"not an onnx model")
    assert "model.onnx cannot be run by ONNX Runtime" in _serve_fails(tmp_path, "--model_dir", str(corrupt))
    (corrupt / "model.onnx").write_bytes((export_dir / "model.onnx").read_bytes())
    (corrupt / "labels.json").write_text('["only one label"]')
    assert "labels.json names 1 labels" in _serve_fails(tmp_path, "--model_dir", str(corrupt))

    assert "exactly one of --ckpt_path and --model_dir" in _serve_fails(tmp_path)
    assert "is unset or empty" in _serve_fails(
        tmp_path, "--model_dir", str(export_dir), "--api_key_env", "NO_SUCH_VAR_X"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        result = subprocess.run([TEXTCLS, "serve", "--model_dir", str(export_dir), "--port", busy],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
        assert "cannot listen on 127.0.0.1:" in one_error_line(result)


def test_serve_starts_without_importing_lightning_or_torch():
    probe = (
        "import sys\n"
        "from textcls.entry import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit as stop:\n    assert stop.code == 0\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--max_batch_size" in result.stdout and "--api_key_env" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
