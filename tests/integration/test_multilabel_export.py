"""Multi-label models through `textcls export` (ONNX parity, labels.json with thresholds) and `textcls serve` (both
backends, as real servers on 127.0.0.1), on hand-made multi-label checkpoints (tests/multilabel_checkpoints.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TEXTCLS, one_error_line
from multilabel_checkpoints import LABELS, THRESHOLDS, multi_label_checkpoint
from serve_helpers import Server, all_ready, free_port

from textcls.cli import main
from textcls.inference import load_classifier

ort = pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TEXTS = ["i am so furious today", "scared and happy", "", "glad glad glad", "so furious and afraid", "mad mad", "x"]
CONFIGS = {"mlp": "configs/mlp.yaml", "textcnn": "configs/textcnn.yaml"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return {
        name: multi_label_checkpoint(tmp_path_factory.mktemp(f"ml-{name}"), config) for name, config in CONFIGS.items()
    }


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("ml-export") / "model"
    main(["export", "--ckpt_path", str(checkpoints["mlp"]), "--output", str(out)])
    return out


def _onnx_probabilities(directory: Path, texts: list[str]) -> np.ndarray:
    """What a user of the exported directory does: tokenizers + ONNX Runtime, no textcls, no torch."""
    tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    ids = np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input_ids": ids})[0]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_outputs_each_label_s_probability_and_labels_json_the_thresholds(checkpoints, tmp_path, capsys, name):
    out = tmp_path / "export"
    capsys.readouterr()
    main(["export", "--ckpt_path", str(checkpoints[name]), "--output", str(out)])
    assert "max |probability difference|" in capsys.readouterr().out
    clf = load_classifier(checkpoints[name])
    info = json.loads((out / "labels.json").read_text())
    assert info == {"multi_label": True, "labels": list(LABELS), "thresholds": pytest.approx(list(THRESHOLDS))}
    assert info["thresholds"] == clf.thresholds  # the checkpoint's float32 values exactly: same decisions
    for texts in (TEXTS, ["dull"], TEXTS * 5):
        got = _onnx_probabilities(out, texts)
        np.testing.assert_allclose(got, clf.predict_proba(texts), atol=1e-5, rtol=0)
        decided = [
            {n for n, p, t in zip(info["labels"], row, info["thresholds"], strict=True) if p >= t} for row in got
        ]
        assert decided == [r["labels"] for r in clf.predict(texts)]
    assert not np.allclose(got.sum(axis=1), 1.0), "per-label sigmoids, not a softmax"


def test_the_readme_snippet_of_a_multi_label_export_runs(exported, checkpoints):
    readme = (exported / "README.txt").read_text()
    code = "\n".join(line[4:] for line in readme.splitlines() if line.startswith("    ") and line[4] != " ")
    result = subprocess.run([sys.executable, "-c", code], cwd=exported, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [r["labels"] for r in load_classifier(checkpoints["mlp"]).predict(["a great film", "dull"])]
    assert result.stdout.strip() == str(expected)


@pytest.fixture(scope="module")
def servers(checkpoints, exported, tmp_path_factory):
    started = {
        "torch": Server(tmp_path_factory.mktemp("ml-torch-server"), "--ckpt_path", str(checkpoints["mlp"])),
        "onnx": Server(tmp_path_factory.mktemp("ml-onnx-server"), "--model_dir", str(exported)),
    }
    with all_ready(started):
        yield started


def _assert_same(got: list[dict], expected: list[dict]) -> None:
    assert [g["labels"] for g in got] == [[n for n in LABELS if n in e["labels"]] for e in expected]  # label order
    for g, e in zip(got, expected, strict=True):
        assert set(g) == {"labels", "probabilities"} and list(g["probabilities"]) == list(e["probabilities"])
        np.testing.assert_allclose(list(g["probabilities"].values()), list(e["probabilities"].values()), atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_server_answers_label_sets_with_the_tuned_or_the_request_s_threshold(servers, checkpoints, backend):
    server = servers[backend]
    clf = load_classifier(checkpoints["mlp"])
    texts = [text for text in TEXTS if text.strip()]  # the server turns empty texts away
    status, info = server.get("/info")
    assert status == 200 and info["model"]["task"] == "multi_label"
    assert info["model"]["thresholds"] == pytest.approx(list(THRESHOLDS))
    status, answer = server.predict({"texts": texts})
    assert status == 200, answer
    _assert_same(answer["predictions"], clf.predict(texts))
    assert any(p["labels"] != list(LABELS) for p in answer["predictions"])  # the thresholds decide, not "all"
    status, answer = server.predict({"texts": texts, "threshold": 0.45, "top_k": 2})
    assert status == 200, answer
    _assert_same(answer["predictions"], clf.predict(texts, threshold=0.45, top_k=2))
    status, answer = server.predict({"text": texts[0], "threshold": 0})
    assert status == 200 and answer["predictions"][0]["labels"] == list(LABELS)
    for bad in (1.5, -0.1, True, "0.5"):
        status, answer = server.predict({"text": texts[0], "threshold": bad})
        assert status == 422 and "'threshold' must be a number from 0 to 1" in answer["error"], answer


def test_a_bad_labels_json_is_one_line_naming_the_file(exported, tmp_path):
    cases = {
        "threshold-above-1": (
            {"multi_label": True, "labels": list(LABELS), "thresholds": [0.5, 1.5, 0.5]},
            "from 0 to 1",
        ),
        "too-few": ({"multi_label": True, "labels": list(LABELS), "thresholds": [0.5, 0.5]}, "must be 3 numbers"),
        "not-multi": ({"multi_label": False, "labels": list(LABELS), "thresholds": [0.5] * 3}, "must be a list of"),
        "nan": ('{"multi_label": true, "labels": ["anger", "fear", "joy"], "thresholds": [0.5, NaN, 0.5]}', "NaN"),
    }
    for case, (content, expected) in cases.items():
        directory = tmp_path / case
        shutil.copytree(exported, directory)
        text = content if isinstance(content, str) else json.dumps(content)
        (directory / "labels.json").write_text(text)
        result = subprocess.run([TEXTCLS, "serve", "--model_dir", str(directory), "--port", str(free_port())],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
        line = one_error_line(result)
        assert expected in line and str(directory / "labels.json") in line, (case, line)
