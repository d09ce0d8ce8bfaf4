"""Predict from a checkpoint alone: `load_classifier(path).predict(texts)`, with no DataModule and no Trainer.

The checkpoint is read with `torch.load(weights_only=True)`: plain data and tensors only, so loading a file cannot run
code hidden in it. The network is rebuilt from the class path and arguments that LightningCLI recorded, and only
classes under `textcls.models` (or the prefixes a caller explicitly allows) are ever imported from that record.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from textcls.checkpoint import (
    DATA_STATE_KEY,
    THRESHOLDS_KEY,
    check_classes,
    check_consistency,
    named_classes,
    read_checkpoint,
)
from textcls.data.errors import DataError
from textcls.data.tokenizer import SMALL_CALL_TEXTS, WordTokenizer
from textcls.errors import user_error
from textcls.records import multi_label_records, prediction_records, threshold_problem, thresholds_problem

DEFAULT_MAX_LENGTH = 256  # the default of TextDataModule.max_length, for checkpoints written before it was recorded
TRUSTED_MODEL_PREFIXES = ("textcls.models.",)
# Texts are tokenized and length-sorted this many batches at a time: sorting the whole call would hold every token
# id of a very long list in memory at once, while a few dozen batches already group similar lengths together.
_BATCHES_PER_CHUNK = 32


class Classifier:
    """A trained network with its tokenizer and label names, ready to classify Python strings.

    Args:
        model: the network: right-padded int64 token ids [batch, seq] -> logits [batch, classes].
        tokenizer: the tokenizer the network was trained with.
        label_names: class names in logit order.
        max_length: texts are truncated to this many tokens (use the `--data.max_length` of training).
        device: where the network runs, e.g. "cpu", "cuda" or "cuda:1".
        multi_label: one sigmoid per label (a text may have any number of labels) instead of one softmax.
        thresholds: multi-label only: the probability each label needs to be predicted, in label order; unset: 0.5.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: WordTokenizer,
        label_names: Sequence[str],
        max_length: int = DEFAULT_MAX_LENGTH,
        device: str | torch.device = "cpu",
        multi_label: bool = False,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        if max_length < 1:
            raise DataError(f"max_length must be a positive number of tokens, got {max_length}.")
        if thresholds is not None and not multi_label:
            raise DataError("thresholds apply to multi-label models only (pass multi_label=True or no thresholds).")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.multi_label = multi_label
        self.thresholds: list[float] | None = None
        if multi_label:
            chosen = [0.5] * len(self.label_names) if thresholds is None else [float(t) for t in thresholds]
            problem = thresholds_problem(chosen, len(self.label_names))
            if problem is not None:
                raise DataError(f"{problem}.")
            self.thresholds = chosen
        self.source = "the model"  # how messages name where the weights came from (load_classifier: the file)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids of `texts` as one right-padded int64 batch [len(texts), longest] (at least one column)."""
        flat, offsets = self._token_ids(texts)
        return torch.from_numpy(_pad(flat, offsets, np.arange(len(offsets) - 1), self.tokenizer.pad_id))

    def _token_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' token ids as one flat int64 array, and each text's offsets into it."""
        if len(texts) <= SMALL_CALL_TEXTS and all(isinstance(t, str) for t in texts):
            rows = self.tokenizer.encode_texts(texts, self.max_length)  # skips pyarrow's per-call cost when it can
            offsets = np.zeros(len(rows) + 1, np.int64)
            np.cumsum([len(r) for r in rows], out=offsets[1:])
            return np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=int(offsets[-1])), offsets
        return _flatten(self.tokenizer.encode(_as_arrow(texts), self.max_length))

    def logits(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Raw scores [len(texts), classes] (float32), in input order."""
        return np.concatenate(list(self._scores(texts, batch_size, probabilities=False)), axis=0)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities [len(texts), classes] (float32), in input order; columns follow `label_names`.

        A softmax over the labels, or for a multi-label model each label's own sigmoid (rows need not sum to 1)."""
        return np.concatenate(list(self._scores(texts, batch_size, probabilities=True)), axis=0)

    def predict(
        self,
        texts: Sequence[str] | str,
        batch_size: int = 256,
        top_k: int | None = None,
        threshold: float | None = None,
    ) -> list[dict]:
        """One record per text, in input order: `{"label", "probability", "probabilities"}`, or for a multi-label
        model `{"labels", "probabilities"}`, where `labels` is the set of labels whose probability reaches their
        threshold (possibly empty).

        `probabilities` maps every label name to its probability in label order, or, with `top_k`, only the k most
        probable labels, most probable first. An empty or whitespace-only text has no tokens; it gets the network's
        prediction for an empty input (the same for every such text), not an error.

        Args:
            texts: the texts (a single string is treated as a list of one).
            batch_size: texts per forward pass.
            top_k: keep only the k most probable labels in `probabilities`; unset keeps all.
            threshold: multi-label only: one threshold (0 to 1) for every label instead of the tuned ones.
        """
        if isinstance(texts, str):
            texts = [texts]
        num_classes = len(self.label_names)
        if top_k is not None and not 1 <= top_k <= num_classes:
            raise DataError(f"top_k must be between 1 and the number of classes ({num_classes}), got {top_k}.")
        thresholds = self.decision_thresholds(threshold)
        probs = self.predict_proba(texts, batch_size).tolist()
        if thresholds is None:
            return prediction_records(probs, self.label_names, top_k)
        records = multi_label_records(probs, self.label_names, thresholds, top_k)
        return [{**record, "labels": set(record["labels"])} for record in records]

    def decision_thresholds(self, threshold: float | None = None) -> list[float] | None:
        """Each label's threshold for a multi-label model (all `threshold` when given); None for a single-label one."""
        if threshold is not None:
            if not self.multi_label:
                raise DataError(
                    "threshold applies to multi-label models only; this model is single-label (the most probable "
                    "label wins): leave it out."
                )
            problem = threshold_problem(threshold)
            if problem is not None:
                raise DataError(f"threshold {problem}.")
            return [float(threshold)] * len(self.label_names)
        return self.thresholds

    @torch.inference_mode()
    def _scores(self, texts: Sequence[str], batch_size: int, probabilities: bool) -> Iterator[np.ndarray]:
        if batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, got {batch_size}.")
        if len(texts) == 0:
            yield np.zeros((0, len(self.label_names)), np.float32)
            return
        chunk = batch_size * _BATCHES_PER_CHUNK
        for start in range(0, len(texts), chunk):
            flat, offsets = self._token_ids(texts[start : start + chunk])
            lengths = np.diff(offsets)
            # Longest first, so similar lengths share a batch and little compute goes into padding.
            order = np.argsort(-lengths, kind="stable")
            out = np.empty((len(lengths), len(self.label_names)), np.float32)
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                ids = torch.from_numpy(_pad(flat, offsets, rows, self.tokenizer.pad_id))
                scores = self.model(ids.to(self.device, non_blocking=True)).float()
                if probabilities:
                    scores = torch.sigmoid(scores) if self.multi_label else torch.softmax(scores, dim=-1)
                if not bool(torch.isfinite(scores).all()):
                    self._refuse_nonfinite(scores, rows + start)
                out[rows] = scores.cpu().numpy()
            yield out

    def _refuse_nonfinite(self, scores: torch.Tensor, rows: np.ndarray) -> None:
        bad = rows[~torch.isfinite(scores).all(dim=-1).cpu().numpy()][:5].tolist()
        raise user_error(
            f"the model's outputs are not finite (NaN or inf) for texts {bad}",
            self.source,
            "its weights are damaged or training diverged; use another checkpoint or retrain",
        )


def _as_arrow(texts: Sequence[str]) -> pa.Array:
    try:
        return pa.array(texts, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(f"texts must be a list of strings ({err}).") from None


def _flatten(lists: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """All token ids as one int64 array, and the offsets into it of each text's list."""
    return lists.values.to_numpy(zero_copy_only=False).astype(np.int64), lists.offsets.to_numpy().astype(np.int64)


def _pad(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, pad_id: int) -> np.ndarray:
    """The token lists at `rows`, right-padded with `pad_id` to the longest of them, as int64 [len(rows), width]."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    # At least one column: a batch of empty texts is still a valid input for the network.
    width = max(int(lengths.max(initial=0)), 1)
    positions = np.arange(width)
    inside = positions < lengths[:, None]
    batch = np.full((len(rows), width), pad_id, np.int64)
    batch[inside] = flat[(starts[:, None] + positions)[inside]]
    return batch


def load_classifier(
    path: str | Path,
    device: str | torch.device = "cpu",
    max_length: int | None = None,
    trusted_model_prefixes: Sequence[str] = TRUSTED_MODEL_PREFIXES,
) -> Classifier:
    """Load a textcls checkpoint for prediction, with `torch.load(weights_only=True)` only.

    Args:
        path: a `.ckpt` file written by `textcls fit`.
        device: where the network runs, e.g. "cpu", "cuda" or "cuda:1".
        max_length: texts are truncated to this many tokens; unset takes the training `--data.max_length` recorded
            in the checkpoint (256 for checkpoints older than that record).
        trusted_model_prefixes: module prefixes from which the network's class may be imported; the class path is
            read from the checkpoint, so only code you trust belongs here.
    """
    checkpoint = read_checkpoint(path)
    named = named_classes(checkpoint.get("hyper_parameters") or {})
    check_classes(checkpoint, path, trusted={c for _, c in named if c.startswith(tuple(trusted_model_prefixes))})
    check_consistency(checkpoint, path)
    model = build_model(checkpoint, path)
    state = checkpoint[DATA_STATE_KEY]
    tokenizer = WordTokenizer.from_json(state["tokenizer"], f"'{path}' (tokenizer)")
    if max_length is None:
        max_length = recorded_max_length(checkpoint)
    multi_label = is_multi_label(checkpoint)
    clf = Classifier(
        model,
        tokenizer,
        state["label_names"],
        max_length=max_length,
        device=device,
        multi_label=multi_label,
        thresholds=checkpoint["state_dict"][THRESHOLDS_KEY].tolist() if multi_label else None,
    )
    clf.source = f"checkpoint '{path}'"
    return clf


def is_multi_label(checkpoint: dict[str, Any]) -> bool:
    """Whether the checkpoint holds a multi-label model (checked by `textcls.checkpoint.check_consistency`)."""
    return (checkpoint.get("hyper_parameters") or {}).get("multi_label") is True


def recorded_max_length(checkpoint: dict[str, Any]) -> int:
    """The `--data.max_length` the checkpoint was trained with (the default for checkpoints that predate it)."""
    return int(checkpoint[DATA_STATE_KEY].get("max_length") or DEFAULT_MAX_LENGTH)


def build_model(checkpoint: dict[str, Any], path: str | Path) -> nn.Module:
    """The network described by the checkpoint's `hyper_parameters["model"]`, with the checkpoint's weights.

    The caller has already passed the checkpoint through `textcls.checkpoint.check_classes`, the one gate on which
    classes a checkpoint may name."""
    spec = checkpoint["hyper_parameters"].get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise DataError(
            f"'{path}' has no model config (hyper_parameters['model'] with a class_path); it was not written by "
            "`textcls fit`. Use TextClassifier.load_from_checkpoint(path, model=...) instead."
        )
    class_path, init_args = spec["class_path"], dict(spec.get("init_args") or {})
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise DataError(f"'{path}': model class {class_path!r} cannot be imported ({err}).") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise DataError(f"'{path}': {class_path!r} is not a torch.nn.Module class.")
    try:
        model = cls(**init_args)
    except (TypeError, ValueError) as err:
        raise DataError(f"'{path}': cannot build {class_path} from the recorded arguments ({err}).") from None
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise DataError(f"'{path}': the weights do not fit {class_path} ({' '.join(first[:2])[:300]}).") from None
    return model.eval()
