"""The two ways the server runs a model: PyTorch from a checkpoint, or ONNX Runtime from an export directory.

Both turn texts into logits [texts, labels] with exactly the tokenizer, truncation and label order of `textcls
predict` (a multi-label ONNX export gives probabilities, as its graph ends in the sigmoid: `ModelInfo.outputs` says
which). Nothing is imported at module level beyond numpy: each backend imports its runtime when it loads, so an
ONNX server never loads torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textcls.errors import user_error
from textcls.records import thresholds_problem

ONNX_FILES = ("model.onnx", "tokenizer.json", "labels.json")
SPECIAL_TOKENS = ("<pad>", "<unk>")  # textcls's WordTokenizer: ids 0 and 1
INSTALL_SERVE = "pip install 'textcls[serve]'"
# Texts per forward pass; a dynamic batch of many requests is split into length-sorted chunks of this size.
CHUNK_TEXTS = 256


@dataclass
class ModelInfo:
    """What /info tells about the model, and what request validation needs to know (labels, task)."""

    backend: str
    label_names: list[str]
    task: str
    max_length: int | None
    source: dict[str, Any] = field(default_factory=dict)
    thresholds: list[float] | None = None  # a multi-label model's per-label decision thresholds
    outputs: str = "logits"  # what `Backend.logits` returns: "logits", or "probabilities" (multi-label ONNX)


class Backend(Protocol):
    info: ModelInfo

    def logits(self, texts: Sequence[str]) -> np.ndarray: ...


class TorchBackend:
    """A checkpoint loaded with `textcls.inference.load_classifier`: the Python API's own tokenizer and network."""

    def __init__(self, ckpt_path: str | Path, threads: int | None = None) -> None:
        import torch

        from textcls.inference import load_classifier

        if threads is not None:
            torch.set_num_threads(threads)

        path = Path(ckpt_path)
        self.classifier = load_classifier(path, device="cpu")
        model = self.classifier.model
        self.info = ModelInfo(
            backend="torch",
            label_names=list(self.classifier.label_names),
            task="multi_label" if self.classifier.multi_label else "single_label",
            max_length=self.classifier.max_length,
            source={
                "checkpoint": str(path.resolve()),
                "sha256": _sha256(path),
                "model": f"{type(model).__module__}.{type(model).__qualname__}",
            },
            thresholds=self.classifier.thresholds,
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.classifier.logits(texts, batch_size=CHUNK_TEXTS)


class OnnxBackend:
    """A `textcls export` directory: tokenizer.json through the `tokenizers` library, model.onnx in ONNX Runtime."""

    def __init__(self, model_dir: str | Path, threads: int | None = None) -> None:
        directory = Path(model_dir)
        if not directory.is_dir():
            raise user_error("export directory not found", f"--model_dir {directory}", "pass a `textcls export` output")
        missing = [name for name in ONNX_FILES if not (directory / name).is_file()]
        if missing:
            raise user_error(
                f"{', '.join(missing)} missing from the export directory", f"--model_dir {directory}",
                "pass a directory written by `textcls export` (model.onnx, tokenizer.json, labels.json)",
            )  # fmt: skip
        try:
            import onnxruntime as ort
            import tokenizers
        except ImportError as err:
            raise user_error(f"--model_dir needs {err.name}", None, INSTALL_SERVE) from None
        labels, thresholds = _read_labels(directory / "labels.json")
        self.tokenizer, self.max_length, self.pad_id = _read_tokenizer(tokenizers, directory / "tokenizer.json")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers and the like are not the user's to act on
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            self.input_name = self.session.get_inputs()[0].name
            probe = self._run(np.full((1, 1), self.pad_id, np.int64))
        except Exception as err:  # ONNX Runtime raises its own types for a truncated or foreign model
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise user_error(
                f"model.onnx cannot be run by ONNX Runtime ({reason})", str(directory / "model.onnx"),
                "export the checkpoint again with `textcls export`",
            ) from None  # fmt: skip
        if probe.ndim != 2 or probe.shape[1] != len(labels):
            raise user_error(
                f"model.onnx gives {probe.shape[-1]} scores per text but labels.json names {len(labels)} labels",
                str(directory), "export the checkpoint again so the files belong together",
            )  # fmt: skip
        self.info = ModelInfo(
            backend="onnx",
            label_names=labels,
            task="single_label" if thresholds is None else "multi_label",
            max_length=self.max_length,
            source={"model_dir": str(directory.resolve()), "sha256": _sha256(directory / "model.onnx")},
            thresholds=thresholds,
            outputs="logits" if thresholds is None else "probabilities",
        )

    def _run(self, ids: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: ids})[0]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        rows = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
        out = np.empty((len(rows), len(self.info.label_names)), np.float32)
        # Longest first, so each forward pass pads little, as Classifier.predict does.
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), CHUNK_TEXTS):
            chunk = order[start : start + CHUNK_TEXTS]
            width = max(int(lengths[chunk].max(initial=0)), 1)
            ids = np.full((len(chunk), width), self.pad_id, np.int64)
            for row, i in enumerate(chunk):
                ids[row, : lengths[i]] = rows[i]
            out[chunk] = self._run(ids)
        return out


def load_backend(backend: str, path: str, threads: int | None = None) -> Backend:
    """`torch`: a checkpoint file; `onnx`: an export directory. `threads`: intra-op threads (unset: the runtime's)."""
    return TorchBackend(path, threads) if backend == "torch" else OnnxBackend(path, threads)


def _read_labels(path: Path) -> tuple[list[str], list[float] | None]:
    """The label names, and a multi-label export's thresholds (None: single-label, labels.json is a plain list)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise user_error(f"labels.json is not JSON ({err})", str(path), "export the checkpoint again") from None
    thresholds = None
    if isinstance(content, dict):
        if content.get("multi_label") is not True or set(content) != {"multi_label", "labels", "thresholds"}:
            raise user_error(
                'labels.json must be a list of label names, or {"multi_label": true, "labels": [...], '
                '"thresholds": [...]}',
                str(path),
                "export the checkpoint again",
            )
        labels, thresholds = content["labels"], content["thresholds"]
    else:
        labels = content
    if not isinstance(labels, list) or not labels or not all(isinstance(name, str) for name in labels):
        raise user_error("labels.json must be a list of label names", str(path), "export the checkpoint again")
    if thresholds is not None:
        problem = thresholds_problem(thresholds, len(labels))
        if problem is not None:
            raise user_error(f"labels.json is inconsistent: {problem}", str(path), "export the checkpoint again")
        thresholds = [float(t) for t in thresholds]
    return labels, thresholds


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _read_tokenizer(tokenizers: Any, path: Path) -> tuple[Any, int | None, int]:
    """The tokenizer without padding (the backend pads itself, after sorting by length), its max_length and pad id."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        # Declared as added tokens, "<pad>" and "<unk>" typed inside a text would be matched whole by `tokenizers`,
        # where textcls's own tokenizer splits them like any other text ("<", "pad", ">"); without the declaration
        # both give the same ids. (The vocabulary keeps them: padding and unknown words still map to ids 0 and 1.)
        if isinstance(spec, dict) and isinstance(spec.get("added_tokens"), list):
            spec["added_tokens"] = [t for t in spec["added_tokens"] if t.get("content") not in SPECIAL_TOKENS]
        tokenizer = tokenizers.Tokenizer.from_str(json.dumps(spec))
    except Exception as err:  # the `tokenizers` library raises a bare Exception for a file it cannot read
        reason = " ".join(str(err).split())[:200]
        raise user_error(f"tokenizer.json is not a `tokenizers` file ({reason})", str(path), "export again") from None
    tokenizer.no_padding()
    truncation = spec.get("truncation") or {}
    padding = spec.get("padding") or {}
    return tokenizer, truncation.get("max_length"), int(padding.get("pad_id", 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
