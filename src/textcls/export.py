"""`textcls export`: a checkpoint -> a directory that serves without textcls or PyTorch.

The directory holds `model.onnx` (token ids -> logits, dynamic batch and sequence axes), `tokenizer.json` (a
`tokenizers` file with truncation and padding already switched on, so `encode_batch` yields the model's input) and
`labels.json` (class names in logit order), plus a short README.txt.

A multi-label model's graph ends in the sigmoid and outputs `probabilities`, one per label; its labels.json is an
object, `{"multi_label": true, "labels": [...], "thresholds": [...]}`, with the decision threshold of each label. A
single-label labels.json stays a plain list of names, so readers written for it keep working.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from textcls.data.errors import DataError
from textcls.data.tokenizer import WordTokenizer
from textcls.errors import environment_error, user_error
from textcls.inference import Classifier, load_classifier

console = Console(highlight=False)
ONNX_INPUT, ONNX_OUTPUT = "input_ids", "logits"
ONNX_PROBABILITIES = "probabilities"  # a multi-label graph's output
# ONNX Runtime and PyTorch sum in different orders; 1e-4 on logits (or on a multi-label model's probabilities) is
# far below anything that changes a prediction.
PARITY_TOLERANCE = 1e-4
_OUTPUT_FILES = ("model.onnx", "tokenizer.json", "labels.json", "README.txt")
_WRITE_TODO = "free space there or pass --output a writable directory with room"


class PaddedForExport(nn.Module):
    """The network with enough padding appended that every input, even one with no tokens, fits every layer.

    TextCNN pads short batches itself, but with a Python `if` on the sequence length, which a traced graph freezes
    to the example's answer. Padding unconditionally changes nothing (both models ignore padding) and keeps the
    graph valid for every sequence length. With `sigmoid`, the graph gives each label's probability (multi-label).
    """

    def __init__(self, model: nn.Module, pad_id: int, sigmoid: bool = False) -> None:
        super().__init__()
        self.model = model
        self.pad_id = pad_id
        self.extra = max(getattr(model, "kernel_sizes", None) or [1])
        self.sigmoid = sigmoid

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        scores = self.model(F.pad(input_ids, (0, self.extra), value=self.pad_id))
        return torch.sigmoid(scores) if self.sigmoid else scores


def export(
    ckpt_path: str,
    output: str,
    format: Literal["onnx"] = "onnx",
    max_length: int | None = None,
    opset: int | None = None,
    check: bool = True,
) -> Path:
    """Export a textcls checkpoint for serving: model.onnx, tokenizer.json and labels.json in one directory.

    Args:
        ckpt_path: the .ckpt file written by `textcls fit`.
        output: directory to write into (created if missing; files of an earlier export there are replaced).
        format: export format; only "onnx".
        max_length: truncation length written into tokenizer.json; unset takes the training `--data.max_length`
            recorded in the checkpoint.
        opset: ONNX opset version; unset uses the exporter's default.
        check: run the exported model in ONNX Runtime and compare its outputs with PyTorch's before finishing.
    """
    if format != "onnx":
        raise DataError(f"--format {format!r} is not supported; use --format onnx.")
    clf = load_classifier(ckpt_path, device="cpu", max_length=max_length)
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--output '{out_dir}' exists and is not a directory; pass a directory path.")
    for name in _OUTPUT_FILES:
        if (out_dir / name).is_dir():
            raise user_error(
                f"cannot export: a directory named {name} is in the way",
                str(out_dir / name),
                "move it away or pass another --output directory",
            )
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise environment_error(err, "create the export directory", err.filename or out_dir, _WRITE_TODO) from None
    written = {
        "tokenizer.json": serving_tokenizer_json(clf.tokenizer, clf.max_length),
        "labels.json": labels_json(clf),
        "README.txt": _readme(clf, Path(ckpt_path)),
    }
    # Everything is written under temporary names and renamed at the end, so an interrupted export never leaves a
    # model.onnx beside the tokenizer or labels of another checkpoint.
    staged: list[tuple[Path, Path]] = []
    try:
        tmp_model = out_dir / f".model.onnx.{os.getpid()}.tmp"
        staged.append((tmp_model, out_dir / "model.onnx"))
        export_onnx(clf, tmp_model, opset=opset)
        check_output_width(tmp_model, clf.label_names, ckpt_path)
        if check:
            difference = check_onnx(clf, tmp_model)
            compared = "probability" if clf.multi_label else "logit"
            console.print(f"ONNX Runtime matches PyTorch: max |{compared} difference| {difference:.2e}")
        for name, text in written.items():
            tmp = out_dir / f".{name}.{os.getpid()}.tmp"
            staged.append((tmp, out_dir / name))
            tmp.write_text(text, encoding="utf-8")
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as err:
        raise environment_error(err, "write the export", err.filename or out_dir, _WRITE_TODO) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if created and not any(out_dir.iterdir()):  # a failed export leaves no empty directory it made
            out_dir.rmdir()
    console.print(f"Exported to [bold]{out_dir}[/bold]: {', '.join(['model.onnx', *written])}", soft_wrap=True)
    return out_dir


def labels_json(clf: Classifier) -> str:
    """labels.json: the names in logit order; for a multi-label model with the flag and each label's threshold."""
    content: list[str] | dict[str, object] = clf.label_names
    if clf.multi_label:
        content = {"multi_label": True, "labels": clf.label_names, "thresholds": clf.thresholds}
    return json.dumps(content, ensure_ascii=False, indent=1) + "\n"


def output_name(clf: Classifier) -> str:
    return ONNX_PROBABILITIES if clf.multi_label else ONNX_OUTPUT


def export_onnx(clf: Classifier, path: Path, opset: int | None = None) -> None:
    """Write the network as ONNX: int64 input_ids [batch, sequence] -> float logits [batch, classes], or for a
    multi-label model float probabilities [batch, labels]."""
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError:
        raise DataError("ONNX export needs the onnx extra: pip install 'textcls[onnx]'.") from None
    wrapped = PaddedForExport(clf.model, clf.tokenizer.pad_id, sigmoid=clf.multi_label).eval()
    example = clf.encode(["an example text to trace", "short"])
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with _quiet_exporter(), torch.no_grad():
        # dynamo=True: the torch.export-based exporter, torch's default and maintained path (the TorchScript one
        # is deprecated and slated for removal). external_data=False keeps the weights inside model.onnx.
        try:
            program = torch.onnx.export(
                wrapped,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[output_name(clf)],
                dynamic_shapes={"input_ids": {0: batch, 1: sequence}},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        except Exception as err:  # the exporter raises many types; the user needs the operation it could not map
            root: BaseException = err
            while root.__cause__ is not None:  # the innermost error names the operation, the outer ones the step
                root = root.__cause__
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(root))  # the exporter colours its messages
            reason = next((line.strip() for line in text.splitlines() if line.strip()), type(root).__name__)
            raise DataError(
                f"ONNX export of {type(clf.model).__name__} failed: {reason[:300]} (an operation of this network has "
                "no ONNX form in torch's exporter; the checkpoint still serves from PyTorch with `textcls predict`)."
            ) from None
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def check_output_width(path: Path, label_names: list[str], ckpt_path: str) -> None:
    """The written model must give one logit per name of labels.json, or a server would mislabel every text."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = graph.output[0].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims else 0  # 0: a symbolic size, which a traced classifier head never has
    if width and width != len(label_names):
        raise user_error(
            f"checkpoint is inconsistent: the exported network gives {width} logits but the checkpoint names "
            f"{len(label_names)} labels ({', '.join(map(str, label_names))})",
            f"--ckpt_path {ckpt_path}",
            "retrain it with `textcls fit`; nothing was exported",
        )


def check_onnx(clf: Classifier, path: Path) -> float:
    """Run the exported model in ONNX Runtime on texts of several lengths; the largest difference to PyTorch's
    logits (a multi-label model's: probabilities)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DataError(
            "checking the export needs onnxruntime: pip install 'textcls[onnx]', or pass --check false."
        ) from None
    texts = ["", "fine", "a much longer text, long enough to cover every filter width of the network", "two words"]
    ids = clf.encode(texts)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run([output_name(clf)], {ONNX_INPUT: ids.numpy()})[0])
    with torch.no_grad():
        expected = clf.model(ids).float()
        if clf.multi_label:
            expected = torch.sigmoid(expected)
    if not bool(torch.isfinite(expected).all()):
        raise user_error(
            "the network's logits are not finite (NaN or inf)",
            clf.source,
            "its weights are damaged or training diverged; use another checkpoint or retrain; nothing was exported",
        )
    difference = float((got - expected).abs().max())
    if not difference <= PARITY_TOLERANCE:
        raise RuntimeError(f"the exported model's outputs differ from PyTorch's by {difference:.2e}")
    return difference


@contextmanager
def _quiet_exporter():
    """Silence the exporter's notes on optional packages (torchvision) and torch-internal deprecations."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def serving_tokenizer_json(tokenizer: WordTokenizer, max_length: int) -> str:
    """The tokenizer as `tokenizers` JSON with truncation to max_length and right padding with `<pad>` enabled."""
    spec = json.loads(tokenizer.to_json())
    # As added tokens, `tokenizers` would match `<pad>` and `<unk>` literally inside a text and split it there;
    # textcls's own tokenizer reads them as plain words, so the served ids would differ from training's.
    spec["added_tokens"] = []
    spec["truncation"] = {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0}
    pad_token = tokenizer.vocab[tokenizer.pad_id]
    spec["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": tokenizer.pad_id,
        "pad_type_id": 0,
        "pad_token": pad_token,
    }
    return json.dumps(spec, ensure_ascii=False)


def _readme(clf: Classifier, ckpt_path: Path) -> str:
    if clf.multi_label:
        return _multi_label_readme(clf, ckpt_path)
    return f"""Exported by `textcls export` from {ckpt_path.name}.

model.onnx      input "{ONNX_INPUT}": int64 [batch, sequence], right-padded with {clf.tokenizer.pad_id}
                output "{ONNX_OUTPUT}": float32 [batch, {len(clf.label_names)}]; softmax gives probabilities
tokenizer.json  `tokenizers` file; truncates to {clf.max_length} tokens and pads to the longest text of a batch
labels.json     class names in logit order

    import json, numpy as np, onnxruntime, tokenizers
    tok = tokenizers.Tokenizer.from_file("tokenizer.json")
    labels = json.load(open("labels.json"))
    session = onnxruntime.InferenceSession("model.onnx")
    ids = np.array([e.ids for e in tok.encode_batch(["a great film", "dull"])], dtype=np.int64)
    logits = session.run(None, {{"{ONNX_INPUT}": ids}})[0]
    print([labels[i] for i in logits.argmax(-1)])

An empty or whitespace-only text encodes to padding only; the model still gives it a (constant) prediction.
"""


def _multi_label_readme(clf: Classifier, ckpt_path: Path) -> str:
    return f"""Exported by `textcls export` from {ckpt_path.name} (a multi-label model).

model.onnx      input "{ONNX_INPUT}": int64 [batch, sequence], right-padded with {clf.tokenizer.pad_id}
                output "{ONNX_PROBABILITIES}": float32 [batch, {len(clf.label_names)}], each label's own probability
tokenizer.json  `tokenizers` file; truncates to {clf.max_length} tokens and pads to the longest text of a batch
labels.json     {{"multi_label": true, "labels": [names in output order], "thresholds": [one per label]}}; a text
                gets every label whose probability reaches that label's threshold (tuned on the validation split)

    import json, numpy as np, onnxruntime, tokenizers
    tok = tokenizers.Tokenizer.from_file("tokenizer.json")
    info = json.load(open("labels.json"))
    session = onnxruntime.InferenceSession("model.onnx")
    ids = np.array([e.ids for e in tok.encode_batch(["a great film", "dull"])], dtype=np.int64)
    probs = session.run(None, {{"{ONNX_INPUT}": ids}})[0]
    print([{{n for n, p, t in zip(info["labels"], row, info["thresholds"]) if p >= t}} for row in probs])

An empty or whitespace-only text encodes to padding only; the model still gives it a (constant) prediction.
"""
