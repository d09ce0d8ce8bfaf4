"""Multi-label models through `textcls export` (ONNX parity, labels.json with thresholds) and `textcls serve` (both
backends, as real servers on 127.0.0.1), on hand-made multi-label checkpoints (tests/multilabel_checkpoints.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from multilabel_checkpoints import LABELS, THRESHOLDS, multi_label_checkpoint

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
