"""`textcls export --format onnx`: the exported directory, served by ONNX Runtime and `tokenizers` alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import TEXTCLS, main_error_line
from trained_checkpoints import MODELS

from textcls.cli import main
from textcls.inference import load_classifier

ort = pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")

# Different lengths in one batch, so padding is exercised; "dull" and "" are shorter than TextCNN's widest filter (5).
TEXTS = [
    "the film was great number3",
    "dull",
    "",
    "the film was awful and the plot was bad and boring from start to end, said everyone who saw it",
    "lovely film",
    "words never seen in training at all",
    "a <pad> film<unk> was great",  # the special tokens' spellings are plain words inside a text
]


@pytest.fixture(scope="module")
def checkpoints(trained):
    return {name: trained(name) for name in MODELS}


def _serve(directory: Path, texts: list[str]) -> np.ndarray:
    """What a user of the exported directory does: tokenizers + ONNX Runtime, no textcls, no torch."""
    tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    ids = np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": ids})[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_logits_match_pytorch(checkpoints, tmp_path, name):
    out = tmp_path / "export"
    main(["export", "--ckpt_path", str(checkpoints[name]), "--format", "onnx", "--output", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "labels.json", "model.onnx", "tokenizer.json"]

    clf = load_classifier(checkpoints[name])
    assert json.loads((out / "labels.json").read_text()) == clf.label_names
    # The exported tokenizer.json, read by the `tokenizers` library, gives exactly textcls's padded ids.
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    np.testing.assert_array_equal(np.array([e.ids for e in tok.encode_batch(TEXTS)]), clf.encode(TEXTS).numpy())

    expected = clf.logits(TEXTS)
    np.testing.assert_allclose(_serve(out, TEXTS), expected, atol=1e-4, rtol=0)
    # Dynamic axes: other batch sizes and sequence lengths than the ones traced, including one token alone.
    for texts in (["dull"], TEXTS[:2], TEXTS * 7):
        np.testing.assert_allclose(_serve(out, texts), clf.logits(texts), atol=1e-4, rtol=0)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input_ids" and inp.type == "tensor(int64)" and all(isinstance(d, str) for d in inp.shape)


@pytest.mark.slow
def test_export_command_end_to_end_and_help(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "served"
    capsys.readouterr()
    main(["export", "--ckpt_path", str(checkpoints["textcnn"]), "--format", "onnx", "--output", str(out)])
    stdout = capsys.readouterr().out
    assert str(out) in stdout.replace("\n", "") and "ONNX Runtime matches PyTorch" in stdout
    assert (out / "model.onnx").stat().st_size > 0 and not list(out.glob(".*.tmp"))

    # the console script's own top-level help (the program is the subject); the export help in-process
    helps = subprocess.run([TEXTCLS, "--help"], capture_output=True, text=True, timeout=300)
    assert helps.returncode == 0 and "{fit,validate,test,predict}" in helps.stdout
    assert "textcls export --ckpt_path" in helps.stdout
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    export_help = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "--ckpt_path" in export_help and "--output" in export_help


def test_export_of_a_broken_checkpoint_is_one_error_line(tmp_path, capsys):
    truncated = tmp_path / "half.ckpt"
    truncated.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    error = main_error_line(capsys, ["export", "--ckpt_path", str(truncated), "--output", str(tmp_path / "out")])
    assert "half.ckpt" in error and "truncated" in error
    assert not (tmp_path / "out").exists()


def test_unsupported_format_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(tmp_path / "x.ckpt"), "--format", "torchscript", "--output", str(tmp_path)])
    assert exit_info.value.code != 0
    assert "torchscript" in capsys.readouterr().err
