"""A checkpoint from elsewhere is checked before any command uses it: what it records must agree with itself, and its
weights must fit the network it names. Each hostile file gets one `error:` line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from textcls.cli import main
from textcls.errors import UserError
from textcls.inference import load_classifier


@pytest.fixture(scope="module")
def good(trained) -> Path:
    return trained("mlp", "--model.model.init_args.embedding_dim", "8")


def tamper(source: Path, target: Path, edit) -> Path:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, target)
    return target


def _labels(names):
    def edit(c):
        c["TextDataModule"]["label_names"] = names

    return edit


def _nan(c):
    key = next(k for k, v in c["state_dict"].items() if v.is_floating_point())
    c["state_dict"][key] = torch.full_like(c["state_dict"][key], float("nan"))


def _max_length(c):
    c["TextDataModule"]["max_length"] = 0


def _shrunk_embedding(c):
    key = "model.embedding.weight"
    c["state_dict"][key] = c["state_dict"][key][:-1].clone()


CASES = {
    "three-labels-two-logits": (_labels(["neg", "pos", "other"]), "its network has 2 outputs but it names 3 labels"),
    "duplicate-labels": (_labels(["pos", "pos"]), "duplicate label names ['pos']"),
    "nan-weights": (_nan, "holds non-finite weights"),
    "max-length-0": (_max_length, "its recorded max_length is 0"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_an_inconsistent_checkpoint_is_refused_by_every_command(name, good, tmp_path, capsys):
    edit, expected = CASES[name]
    path = tamper(good, tmp_path / f"{name}.ckpt", edit)
    with pytest.raises(UserError) as caught:
        load_classifier(path)
    assert expected in str(caught.value) and path.name in str(caught.value)
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\n", encoding="utf-8")
    for command in (
        ["predict", "--ckpt_path", str(path), "--data.predict_file", str(texts)],
        ["test", "--ckpt_path", str(path), "--data.test_file", str(texts)],
        ["export", "--ckpt_path", str(path), "--output", str(tmp_path / "exported")],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, *(["--runs_root", str(tmp_path / "runs")] if command[0] != "export" else [])])
        assert exit_info.value.code == 2, command
        err = capsys.readouterr().err
        assert expected in " ".join(err.split()) and "Traceback" not in err, (command, err)
    assert not (tmp_path / "exported").exists()
    assert not list(tmp_path.glob("runs/*/*/predictions.csv"))


@pytest.mark.slow
def test_weights_that_do_not_fit_the_recorded_network_are_one_line(good, tmp_path, capsys):
    path = tamper(good, tmp_path / "shrunk.ckpt", _shrunk_embedding)
    texts = tmp_path / "texts.txt"
    texts.write_text("a good film\n", encoding="utf-8")
    for command in (["predict", "--data.predict_file", str(texts)], ["test", "--data.test_file", str(texts)]):
        with pytest.raises(SystemExit) as exit_info:
            main([command[0], "--ckpt_path", str(path), *command[1:], "--runs_root", str(tmp_path / "runs")])
        assert exit_info.value.code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "does not fit the network this command builds" in err and "embedding.weight" in err
        assert "Traceback" not in err and "size mismatch" not in err


def test_a_pickle_payload_is_named_as_such(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo never",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(UserError) as caught:
        load_classifier(path)
    message = str(caught.value)
    assert "holds pickled Python objects (posix.system)" in message or "(nt.system)" in message
    assert "safe loading" in message and "truncated" not in message


@pytest.mark.parametrize(
    ("class_path", "allowed"),
    [
        ("schedulefree.AdamWScheduleFree", True),
        ("schedulefree.SGDScheduleFree", True),
        ("schedulefree.RAdamScheduleFree", True),
        ("lion_pytorch.Lion", True),
        ("schedulefree.os", False),
        ("schedulefree.adamw_schedulefree.torch", False),
        ("schedulefree.AdamWScheduleFree.step", False),
        ("lion_pytorch.lion_pytorch.exec", False),
        ("lion_pytorch.triton", False),
        ("lion_pytorch.Lion.__init__", False),
    ],
)
def test_dependency_optimizers_are_allowed_by_exact_path_only(class_path, allowed, good, tmp_path):
    from textcls.checkpoint import load_checkpoint

    def edit(c):
        c["hyper_parameters"]["optimizer"] = {"class_path": class_path, "init_args": {"lr": 0.001}}

    path = tamper(good, tmp_path / "optimizer.ckpt", edit)
    if allowed:
        assert load_checkpoint(path)["hyper_parameters"]["optimizer"]["class_path"] == class_path
        return
    with pytest.raises(UserError) as caught:
        load_checkpoint(path)
    assert f"names the class {class_path!r} (model.optimizer)" in str(caught.value)
    assert "only its own networks and schedule and torch's optimizers and schedulers" in str(caught.value)
