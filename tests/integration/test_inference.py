"""The Python prediction API and `textcls predict` on real checkpoints from `textcls fit`, including bad input."""

from __future__ import annotations

import csv
import fractions
import string
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TEXTCLS, main_error_line
from trained_checkpoints import train_checkpoint

from textcls.cli import main
from textcls.data import DataError
from textcls.inference import load_classifier
from textcls.module import TextClassifier

TEXTS = [
    "the film was great number3",
    "dull",
    "the film was awful and the plot was bad and boring from start to end number1",
    "",
    "lovely",
    "words never seen in training",
    "   ",
    "the film was superb",
]


@pytest.fixture(scope="module")
def checkpoints(trained):
    return {name: trained(name) for name in ("textcnn", "mlp")}


def _one_by_one(path: Path, texts: list[str], max_length: int = 256) -> torch.Tensor:
    """Reference probabilities: Lightning's own loader, each text alone in its batch (no padding, no sorting)."""
    module = TextClassifier.load_from_checkpoint(path, map_location="cpu").eval()
    tokenizer = load_classifier(path).tokenizer
    rows = []
    with torch.no_grad():
        for ids in tokenizer.encode_texts(texts, max_length):
            batch = torch.tensor([ids or [tokenizer.pad_id]])
            rows.append(torch.softmax(module(batch), dim=-1)[0])
    return torch.stack(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["textcnn", "mlp"])
def test_predict_matches_the_lightning_module_in_input_order(checkpoints, name):
    clf = load_classifier(checkpoints[name])
    expected = _one_by_one(checkpoints[name], TEXTS)
    # batch_size 3: several batches, and the length sort reorders texts across them
    records = clf.predict(TEXTS, batch_size=3)
    got = torch.tensor([[r["probabilities"][n] for n in clf.label_names] for r in records])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert [r["label"] for r in records] == [clf.label_names[i] for i in expected.argmax(-1).tolist()]
    assert [r["probability"] for r in records] == pytest.approx(expected.max(-1).values.tolist(), abs=1e-6)
    # one big batch gives the same numbers as small ones
    np.testing.assert_allclose(clf.predict_proba(TEXTS, batch_size=256), got.numpy(), atol=1e-6)


@pytest.mark.slow
def test_top_k_keeps_the_most_probable_labels_first(checkpoints):
    clf = load_classifier(checkpoints["mlp"])
    full = clf.predict(TEXTS)
    top = clf.predict(TEXTS, top_k=1)
    for f, t in zip(full, top, strict=True):
        assert list(t["probabilities"].items()) == [(f["label"], f["probability"])]
    ranked = clf.predict(["dull"], top_k=2)[0]["probabilities"]
    assert list(ranked.values()) == sorted(ranked.values(), reverse=True)
    with pytest.raises(DataError, match="top_k must be between 1 and the number of classes"):
        clf.predict(TEXTS, top_k=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["textcnn", "mlp"])
def test_empty_and_blank_texts_get_the_prediction_for_no_tokens(checkpoints, name):
    clf = load_classifier(checkpoints[name])
    blank = clf.predict_proba(["", "   ", "\t \n"])
    with torch.no_grad():
        no_tokens = torch.softmax(clf.model(torch.zeros(1, 1, dtype=torch.long)), dim=-1).numpy()
    np.testing.assert_allclose(blank, np.repeat(no_tokens, 3, axis=0), atol=1e-6)
    assert np.isfinite(blank).all()
    assert clf.predict([]) == [] and clf.predict_proba([]).shape == (0, len(clf.label_names))


@pytest.mark.slow
def test_a_one_megabyte_text_is_truncated_to_max_length(checkpoints):
    clf = load_classifier(checkpoints["textcnn"], max_length=16)
    words = ("the film was dull number2 " * 4).split()[:16]
    huge = " ".join(words) + " great" * 180_000  # ~1 MB; everything after token 16 must be ignored
    assert len(huge.encode()) > 1_000_000
    assert clf.encode([huge]).shape == (1, 16)
    np.testing.assert_allclose(clf.predict_proba([huge]), clf.predict_proba([" ".join(words)]), atol=1e-6)


@pytest.mark.slow
def test_checkpoint_is_plain_data_that_loads_with_weights_only(checkpoints):
    path = checkpoints["textcnn"]
    # Every global the pickle references must be on torch's weights_only allowlist: no textcls, Lightning or
    # jsonargparse objects hide in it.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)

    def leaves(value, where="checkpoint"):
        if isinstance(value, (dict, OrderedDict)):
            for k, v in value.items():
                assert isinstance(k, (str, int)), f"{where}: key {k!r}"
                yield from leaves(v, f"{where}[{k!r}]")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                yield from leaves(v, f"{where}[{i}]")
        else:
            yield where, value

    for where, value in leaves(checkpoint):
        assert value is None or isinstance(value, (str, int, float, bool, torch.Tensor)), f"{where}: {type(value)}"
    assert checkpoint["hyper_parameters"]["model"]["class_path"] == "textcls.models.TextCNN"
    assert isinstance(checkpoint["TextDataModule"]["tokenizer"], str)


def test_a_pickled_object_is_refused_not_executed(tmp_path):
    # The control for the test above: a checkpoint holding any other object is caught by both checks.
    path = tmp_path / "object.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": fractions.Fraction(1, 3)}, "TextDataModule": {}}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == ["fractions.Fraction"]
    with pytest.raises(DataError, match="pickled Python objects"):
        load_classifier(path)


def _broken_checkpoints(source: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the error must contain)."""
    good = torch.load(source, map_location="cpu", weights_only=True)
    out = {"missing": (tmp_path / "nope.ckpt", "does not exist")}
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    out["truncated"] = (truncated, "truncated or not a PyTorch checkpoint")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint at all\n")
    out["text-file"] = (text, "truncated or not a PyTorch checkpoint")
    plain = tmp_path / "weights.ckpt"
    torch.save({"weight": torch.zeros(2)}, plain)
    out["foreign"] = (plain, "not a textcls checkpoint: it has no 'state_dict', 'hyper_parameters', 'TextDataModule'")
    for key, expected in [("TextDataModule", "it has no 'TextDataModule'"), ("hyper_parameters", "'hyper_parameters'")]:
        partial = {k: v for k, v in good.items() if k != key}
        torch.save(partial, tmp_path / f"no-{key}.ckpt")
        out[f"no-{key}"] = (tmp_path / f"no-{key}.ckpt", expected)
    return out


@pytest.mark.slow
def test_broken_checkpoints_raise_data_errors(checkpoints, tmp_path):
    source = checkpoints["mlp"]
    good = torch.load(source, map_location="cpu", weights_only=True)
    cases = _broken_checkpoints(source, tmp_path)

    no_model = {**good, "hyper_parameters": {k: v for k, v in good["hyper_parameters"].items() if k != "model"}}
    torch.save(no_model, tmp_path / "no-model.ckpt")
    cases["no-model-config"] = (tmp_path / "no-model.ckpt", "has no model config")

    state = dict(good["state_dict"])
    state.pop(next(iter(state)))
    torch.save({**good, "state_dict": state}, tmp_path / "no-weight.ckpt")
    cases["missing-weight"] = (tmp_path / "no-weight.ckpt", "the weights do not fit textcls.models.MLP")

    hparams = {**good["hyper_parameters"], "model": {"class_path": "subprocess.Popen", "init_args": {"args": "true"}}}
    torch.save({**good, "hyper_parameters": hparams}, tmp_path / "popen.ckpt")
    cases["untrusted-class"] = (tmp_path / "popen.ckpt", "names the class 'subprocess.Popen'")

    for name, (path, expected) in cases.items():
        with pytest.raises(DataError) as caught:
            load_classifier(path)
        assert expected in str(caught.value), name
        assert path.name in str(caught.value), name


def _predict(checkpoint: Path, texts: Path, tmp_path: Path) -> list[str]:
    return ["predict", "--ckpt_path", str(checkpoint), "--data.predict_file", str(texts),
            "--runs_root", str(tmp_path / "runs")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "truncated", "no-TextDataModule"])
def test_predict_command_rejects_broken_checkpoints(checkpoints, tmp_path, case, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path, expected = _broken_checkpoints(checkpoints["mlp"], tmp_path)[case]
    texts = tmp_path / "texts.txt"
    texts.write_text("a great film\n")
    line = main_error_line(capsys, _predict(path, texts, tmp_path))
    assert expected in line and path.name in line
    assert not any((tmp_path / "runs").glob("*/*")), "a failed run must not leave a run directory"


@pytest.mark.slow
def test_predict_command_handles_blank_and_huge_lines_like_the_api(checkpoints, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = ["a great film", "", "   ", "dull " * 210_000, "the film was lovely"]  # line 4 is ~1 MB
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(_predict(checkpoints["textcnn"], texts, tmp_path))
    rows = list(csv.DictReader(next((tmp_path / "runs").glob("*/*-predict/predictions.csv")).open()))
    clf = load_classifier(checkpoints["textcnn"])
    assert [int(r["id"]) for r in rows] == list(range(len(lines)))
    got = np.array([[float(r[f"p_{n}"]) for n in clf.label_names] for r in rows])
    np.testing.assert_allclose(got, clf.predict_proba(lines), atol=1e-5)


@pytest.mark.slow
def test_predict_command_rejects_a_non_utf8_file(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    texts = tmp_path / "latin1.txt"
    texts.write_bytes("a great film\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
    line = main_error_line(capsys, _predict(checkpoints["textcnn"], texts, tmp_path))
    assert texts.name in line and "UTF-8" in line.upper()


@pytest.mark.parametrize("max_length", [256, 5])
def test_ascii_fast_path_gives_the_tokenizers_ids(max_length):
    # Small calls go through `tokenizers` instead of the pyarrow tokenizer; both must give identical ids on any text.
    import pyarrow as pa

    from textcls.data.tokenizer import WordTokenizer
    from textcls.inference import Classifier, _flatten
    from textcls.models import MLP

    rng = np.random.default_rng(0)
    alphabet = list(string.ascii_letters + string.digits + "_" + string.punctuation) + [" "] * 12 + ["\t", "\n", "\r"]
    words = ["Film", "great", "DULL", "don", "t", "'", "...", "a_b", "x2", "!?"]
    texts = ["", " ", "\t\r\n", "Don't  stop...  NOW!!", "a_b-c__d e2e 3.14 (x) <br />"]
    for _ in range(600):
        parts = [rng.choice(words) if rng.random() < 0.4 else rng.choice(alphabet) for _ in range(rng.integers(0, 40))]
        texts.append("".join(parts))
    tokenizer = WordTokenizer.train(pa.array(texts[: len(texts) // 2]), min_freq=2)
    clf = Classifier(MLP(tokenizer.vocab_size, 2), tokenizer, ["a", "b"], max_length=max_length)
    for start in range(0, len(texts), 50):
        batch = texts[start : start + 50]
        fast = clf._token_ids(batch)
        slow = _flatten(tokenizer.encode(pa.array(batch, pa.string()), max_length))
        for got, want in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(got, want)
    assert (clf._token_ids(texts[:50])[0] > tokenizer.unk_id).any(), "the test texts must hit the vocabulary"
    # Non-ASCII text too ("café" stays one word on both paths).
    for text in ["Café GREAT", "naïve film", "x\u00a0y"]:
        want = _flatten(tokenizer.encode(pa.array([text], pa.string()), max_length))[0]
        np.testing.assert_array_equal(clf._token_ids([text])[0], want)


@pytest.mark.slow  # a fresh interpreter importing torch: ~6 s on a loaded machine
def test_import_textcls_stays_light():
    code = (
        "import sys, textcls; assert 'torch' not in sys.modules, 'import textcls pulled in torch'; "
        "from textcls import load_classifier; assert callable(load_classifier) and 'torch' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_matches_cpu(checkpoints):
    cpu = load_classifier(checkpoints["textcnn"]).predict_proba(TEXTS)
    gpu = load_classifier(checkpoints["textcnn"], device="cuda")
    assert next(gpu.model.parameters()).is_cuda
    np.testing.assert_allclose(gpu.predict_proba(TEXTS), cpu, atol=1e-4)


@pytest.mark.slow
def test_ddp_predict_writes_one_file_in_input_order_with_top_k(checkpoints, tmp_path):
    # Two real DDP processes (gloo on CPU); small batches so each rank writes several batches to its part.
    lines = [f"the film was {'great' if i % 3 else 'dull'} number{i} " + "and more " * (i % 5) for i in range(37)]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [TEXTCLS, *_predict(checkpoints["textcnn"], texts, tmp_path), "--trainer.accelerator", "cpu",
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--data.eval_batch_size", "4",
         "--predictions.top_k", "2", "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").glob("*/*-predict")
    assert sorted(p.name for p in run_dir.glob("*predictions*")) == ["predictions.csv"], "parts must be merged away"
    assert result.stdout.count("Predictions written to") == 1  # rank 0 only
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert list(rows[0]) == ["id", "label", "probability", "label_2", "probability_2"]
    assert [int(r["id"]) for r in rows] == list(range(len(lines)))
    clf = load_classifier(checkpoints["textcnn"])
    expected = clf.predict(lines, top_k=2)
    for row, want in zip(rows, expected, strict=True):
        (first, p1), (second, p2) = want["probabilities"].items()
        assert (row["label"], row["label_2"]) == (first, second)
        assert float(row["probability"]) == pytest.approx(p1, abs=1e-5)
        assert float(row["probability_2"]) == pytest.approx(p2, abs=1e-5)


@pytest.mark.slow
def test_the_training_max_length_travels_with_the_checkpoint(tmp_path, monkeypatch, capsys):
    """Prediction truncates as training did without being told: the API, `textcls predict` and export read the
    `--data.max_length` recorded in the checkpoint; an explicit value still wins."""
    path = train_checkpoint(tmp_path, "mlp", "--data.max_length", "9")
    assert load_classifier(path).max_length == 9
    assert load_classifier(path, max_length=20).max_length == 20
    assert load_classifier(path).encode(["a b c d e f g h i j k l"]).shape == (1, 9)
    texts = tmp_path / "texts.txt"
    texts.write_text("a great film\n", encoding="utf-8")
    args = ["predict", "--ckpt_path", str(path), "--data.predict_file", str(texts), "--print_config"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    printed = capsys.readouterr()
    assert exit_info.value.code in (0, None), printed.err[-2000:]
    assert "max_length: 9" in printed.out


@pytest.mark.slow
def test_a_label_order_other_than_the_checkpoint_s_is_refused(checkpoints):
    from textcls.data import TextDataModule

    names = load_classifier(checkpoints["mlp"]).label_names
    assert TextDataModule(tokenizer_file=str(checkpoints["mlp"]), label_order=names).label_names == names
    with pytest.raises(DataError, match=r"differs from the label order of --data\.tokenizer_file"):
        _ = TextDataModule(tokenizer_file=str(checkpoints["mlp"]), label_order=names[::-1]).label_names
