"""Model recipe options: TextCNN's max-norm constraint on the output layer (training only, ONNX-exportable), the
embedding initialisation scale of both models, and the MLP's NB-weighted binary n-gram pooling in ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trained_checkpoints import train_checkpoint

from textcls.cli import main
from textcls.inference import load_classifier
from textcls.models import TextCNN

VOCAB, CLASSES, PAD = 40, 3, 0


def _train(model: TextCNN, steps: int = 30) -> TextCNN:
    """A few large Adam steps on random data: enough to push unconstrained output rows far beyond norm 1."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randint(1, VOCAB, (16, 9))
    y = torch.randint(0, CLASSES, (16,))
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()  # leaving training projects the last update


def _row_norms(model: TextCNN) -> torch.Tensor:
    return model.output.weight.detach().norm(dim=1)


def test_max_norm_bounds_every_output_row_and_only_when_set() -> None:
    torch.manual_seed(0)
    free = _train(TextCNN(VOCAB, CLASSES, PAD, embedding_dim=8, num_filters=6))
    torch.manual_seed(0)
    bounded = _train(TextCNN(VOCAB, CLASSES, PAD, embedding_dim=8, num_filters=6, max_norm=1.0))
    assert _row_norms(free).max() > 1.5  # the same training without the constraint does exceed it
    assert torch.all(_row_norms(bounded) <= 1.0 + 1e-5)
    # rows are rescaled, not clipped element-wise: at least one row sits on the bound
    assert math.isclose(_row_norms(bounded).max().item(), 1.0, rel_tol=1e-4)


def test_max_norm_leaves_rows_inside_the_bound_and_other_layers_alone() -> None:
    torch.manual_seed(0)
    model = TextCNN(VOCAB, CLASSES, PAD, embedding_dim=8, num_filters=6, max_norm=100.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model(torch.randint(1, VOCAB, (4, 7)))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_evaluation_never_changes_the_weights() -> None:
    torch.manual_seed(0)
    model = _train(TextCNN(VOCAB, CLASSES, PAD, embedding_dim=8, num_filters=6, max_norm=0.5))
    before = model.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    with torch.no_grad():
        model(torch.randint(1, VOCAB, (4, 7)))
    model.eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_training_forward_projects_the_previous_update() -> None:
    torch.manual_seed(0)
    model = TextCNN(VOCAB, CLASSES, PAD, embedding_dim=8, num_filters=6, max_norm=0.5).train()
    with torch.no_grad():
        model.output.weight.mul_(100.0)  # as a large update would leave it
    assert _row_norms(model).max() > 0.5
    model(torch.randint(1, VOCAB, (4, 7)))
    assert torch.all(_row_norms(model) <= 0.5 + 1e-5)


def test_default_is_unconstrained_with_the_same_parameters() -> None:
    assert TextCNN().max_norm is None
    assert TextCNN().state_dict().keys() == TextCNN(max_norm=3.0).state_dict().keys()


@pytest.mark.parametrize("bad", [0.0, -3.0, math.nan, math.inf])
def test_bad_max_norm_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="max_norm"):
        TextCNN(max_norm=bad)


def _assert_onnx_matches_pytorch(ckpt, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    clf = load_classifier(ckpt)
    out = tmp_path / "export"
    main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--output", str(out)])
    # repeated words and n-grams, so that binary pooling has something to drop
    texts = ["the film was great", "dull", "an awful, boring film from start to end", "great great film film great"]
    ids = clf.encode(texts).numpy().astype(np.int64)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["logits"], {"input_ids": ids})[0], clf.logits(texts), atol=1e-4, rtol=0)


@pytest.mark.slow  # trains a checkpoint
def test_max_norm_checkpoint_trains_and_exports_to_onnx(tmp_path) -> None:
    ckpt = train_checkpoint(tmp_path, "textcnn", "--model.model.init_args.max_norm", "0.5")
    clf = load_classifier(ckpt)
    assert clf.model.max_norm == 0.5
    assert torch.all(clf.model.output.weight.norm(dim=1) <= 0.5 + 1e-4)
    _assert_onnx_matches_pytorch(ckpt, tmp_path)


@pytest.mark.slow  # trains a checkpoint
def test_nb_weighted_binary_trigram_mlp_exports_to_onnx(tmp_path) -> None:
    # binary pooling sorts each row (dedupe_mask); torch's stable sort had no ONNX export, so this failed before
    options = {"ngram_buckets": "997", "ngram_order": "3", "binary": "true", "pooling": "sqrt", "nb_weighting": "true"}
    args = [arg for key, value in options.items() for arg in (f"--model.model.init_args.{key}", value)]
    ckpt = train_checkpoint(tmp_path, "mlp", *args)
    assert load_classifier(ckpt).model.nb_unigram.max() > 1  # counted, not the initial ones
    _assert_onnx_matches_pytorch(ckpt, tmp_path)


@pytest.mark.parametrize("model_class", ["TextCNN", "MLP"])
def test_embedding_init_std_sets_the_scale_and_keeps_padding_zero(model_class: str) -> None:
    import textcls.models as models

    cls = getattr(models, model_class)
    extra = {"ngram_buckets": 500} if model_class == "MLP" else {}
    torch.manual_seed(0)
    small = cls(vocab_size=5000, num_classes=2, pad_id=0, embedding_dim=64, embedding_init_std=0.05, **extra)
    tables = [small.embedding] + ([small.ngram_embedding] if model_class == "MLP" else [])
    for table in tables:
        assert abs(table.weight[1:].std().item() - 0.05) < 0.005
    assert torch.count_nonzero(small.embedding.weight[0]) == 0
    # the default draws nothing beyond nn.Embedding's own N(0, 1): weights equal those of a model built before the
    # option existed, so default runs (and the demo's figures) do not change
    torch.manual_seed(0)
    default = cls(vocab_size=5000, num_classes=2, pad_id=0, embedding_dim=64, **extra)
    torch.manual_seed(0)
    reference = nn.Embedding(5000, 64, padding_idx=0)
    assert torch.equal(default.embedding.weight, reference.weight)
    with pytest.raises(ValueError, match="embedding_init_std"):
        cls(embedding_init_std=0.0)


@pytest.mark.slow  # trains a checkpoint
def test_a_network_the_exporter_cannot_map_is_one_error_line(tmp_path, monkeypatch, capsys) -> None:
    # A real exporter failure: binary pooling through torch's stable sort (dedupe_mask's first form), which has no
    # ONNX function.
    import textcls.models.mlp as mlp_module

    def stable_sort_dedupe(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keys = torch.where(mask, ids, torch.full_like(ids, torch.iinfo(ids.dtype).max))
        order = torch.argsort(keys, dim=1, stable=True)
        ordered = torch.gather(keys, 1, order)
        first = torch.ones_like(mask)
        first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        return torch.zeros_like(mask).scatter(1, order, first & torch.gather(mask, 1, order))

    ckpt = train_checkpoint(tmp_path, "mlp", "--model.model.init_args.binary", "true")
    monkeypatch.setattr(mlp_module, "dedupe_mask", stable_sort_dedupe)
    out = tmp_path / "export"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--ckpt_path", str(ckpt), "--output", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ONNX export of MLP failed" in errors[0] and "sort" in errors[0]
    assert not out.exists()  # nothing half-written
