"""The journey matrix of issue 12: a user's own CSV (columns ticket_id / subject_line / category, string labels) through
fit -> kill -9 -> `fit --ckpt_path last` -> test -> validate -> predict -> export, for every experiment config and
benchmark recipe, every precision preset, one process and 2-process ddp_cpu, each cell taking real optimizer steps.

Covered sparsely, as the issue allows: every model with every precision (fit, stacked on the CPU presets); every step
with each strategy (the later steps from each model's 32-true checkpoint, in-process; kill and resume with one
model per strategy, and the ddp_cpu steps, as subprocesses). Columns are named at fit time only: later steps pass only
`--ckpt_path` and the input file, and a resume repeats only the experiment's config files and its budget."""

from __future__ import annotations

import contextlib
import csv
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from journeys import (
    CPU_PRESETS,
    FEW_STEPS,
    LABELS,
    MODELS,
    PRECISIONS,
    ROOT,
    fit_data,
    model_args,
    one_launch,
    preset,
    run_textcls,
    write_ticket_files,
)

from textcls.cli import TextclsCLI, main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# what Lightning runs on this CPU for each preset (no float16 autocast on CPUs)
RUNS_AS = {"32-true": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "bf16-mixed"}
DDP_TIMEOUT = 240


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The user's files, and a cache directory of the tests' own (as $XDG_CACHE_HOME, the default a user gets)."""
    root = tmp_path_factory.mktemp("journeys")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield {"root": root, "files": write_ticket_files(root / "data")}


_fits: dict[tuple[str, str], dict] = {}


def fitted(world: dict, model: str, precision: str) -> dict:
    """The fit cell (model, precision), run once in its own working directory: its CLI, run directory, warnings."""
    key = (model, precision)
    if isinstance(_fits.get(key), BaseException):
        pytest.fail(f"the fit cell {model}-{precision} failed: {_fits[key]!r}")
    if key not in _fits:
        workdir = world["root"] / f"{model}-{precision}"
        workdir.mkdir()
        args = ["fit", *model_args(model, world["files"]), *[a for p in CPU_PRESETS for a in preset(p)]]
        args += [*preset(f"precision-{precision}.yaml"), *fit_data(world["files"]), *FEW_STEPS]
        with contextlib.chdir(workdir), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # each distinct warning once, as a user's terminal shows it
            try:
                cli = TextclsCLI(args=args)
            except BaseException as err:
                _fits[key] = err
                raise
        run = Path(cli.trainer.default_root_dir)
        if not run.is_absolute():
            run = workdir / run
        _fits[key] = {"cli": cli, "run": run, "warnings": [str(w.message) for w in caught]}
    return _fits[key]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", list(MODELS))
def test_fit_takes_real_steps_with_every_model_and_precision(world, model, precision, capfd, caplog):
    cell = fitted(world, model, precision)
    out, err = capfd.readouterr()
    trainer = cell["cli"].trainer
    assert trainer.precision == RUNS_AS[precision]
    assert trainer.global_step == 3
    last = torch.load(cell["run"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3 and (cell["run"] / "checkpoints" / "best.ckpt").is_file()
    assert last["TextDataModule"]["label_names"] == sorted(LABELS)
    if precision == "16-mixed":
        # One line tells the user that 16-mixed runs as bf16-mixed here: not zero, not once per layer of the stack.
        said = [line for text in (out, err, *cell["warnings"], caplog.text) for line in text.splitlines()]
        assert sum("bf16-mixed" in line for line in said) == 1, said


def checkpoint(world: dict, model: str) -> Path:
    return fitted(world, model, "32-true")["run"] / "checkpoints" / "best.ckpt"


@pytest.mark.parametrize("model", list(MODELS))
def test_test_needs_only_the_checkpoint_and_the_file(world, model, tmp_path, monkeypatch, capsys):
    best = checkpoint(world, model)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    main(["test", "--ckpt_path", str(best), "--data.test_file", str(world["files"]["test"])])
    out = capsys.readouterr().out
    assert "test/acc" in out and "test/loss" in out


# validate reads its file as test does (the same checkpoint settings, the same evaluation loop): both networks suffice
@pytest.mark.parametrize("model", ["textcnn", "mlp"])
def test_validate_needs_only_the_checkpoint_and_the_file(world, model, tmp_path, monkeypatch, capsys):
    best = checkpoint(world, model)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    main(["validate", "--ckpt_path", str(best), "--data.val_file", str(world["files"]["val"])])
    out = capsys.readouterr().out
    assert "val/acc" in out and "val/loss" in out


def read_predictions(root: Path) -> list[dict[str, str]]:
    [path] = list(root.rglob("predictions.csv"))
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def input_texts(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["subject_line"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("model", list(MODELS))
def test_predict_writes_one_named_label_per_input(world, model, tmp_path, monkeypatch):
    from textcls.inference import load_classifier

    best = checkpoint(world, model)
    monkeypatch.chdir(tmp_path)
    main(["predict", "--ckpt_path", str(best), "--data.predict_file", str(world["files"]["predict"])])
    rows = read_predictions(tmp_path)
    texts = input_texts(world["files"]["predict"])
    assert len(rows) == len(texts) and [int(r["id"]) for r in rows] == list(range(len(texts)))
    assert {f"p_{name}" for name in LABELS} <= set(rows[0])
    expected = load_classifier(best).predict(texts)  # the Python API on the same checkpoint: the same labels
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert {r["label"] for r in rows} <= set(LABELS)


# Export is the slowest step (torch.export + ONNX Runtime's check): the default model, and the MLP recipe with the most
# options at once (trigrams, binary terms, sqrt pooling, NB weights); tests/integration/test_export.py has the others.
@pytest.mark.parametrize("model", ["textcnn", "mlp_nb_imdb"])
def test_export_writes_onnx_that_matches_pytorch(world, model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    tokenizers = pytest.importorskip("tokenizers")
    from textcls.inference import load_classifier

    best = checkpoint(world, model)
    out = tmp_path / "export"
    main(["export", "--ckpt_path", str(best), "--output", str(out)])
    texts = input_texts(world["files"]["predict"])
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    ids = np.array([e.ids for e in tok.encode_batch(texts)], dtype=np.int64)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(["logits"], {"input_ids": ids})[0], load_classifier(best).logits(texts), atol=1e-4, rtol=0
    )


# ---- kill -9 and `fit --ckpt_path last`: one process (TextCNN), then two (MLP under ddp_cpu) ----------------------


def kill_args(marker: Path, step: int) -> list[str]:
    return [
        "--trainer.callbacks+=journeys.KillOnce",
        "--trainer.callbacks.step", str(step),
        "--trainer.callbacks.marker", str(marker),
        "--checkpoint.last_every_n_train_steps", "2",
        "--data.batch_size", "16",
        "--data.max_length", "16",
        "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false",
        "--test_after_fit", "false",
    ]  # fmt: skip


def last_step(run: Path) -> int:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]


def run_dirs(workdir: Path, experiment: str) -> list[Path]:
    return sorted(p for p in (workdir / "runs" / experiment).iterdir() if p.is_dir())


def killed_fit(world: dict, name: str, configs: list[str], max_steps: int, timeout: float) -> Path:
    """A `textcls fit` subprocess killed with SIGKILL after step 3 (last.ckpt is from step 2); its working dir."""
    workdir = world["root"] / name
    workdir.mkdir()
    args = ["fit", *configs, *fit_data(world["files"]), "--trainer.max_steps", str(max_steps)]
    status, output = run_textcls([*args, *kill_args(workdir / "killed", 3)], workdir, timeout, workdir / "killed.log")
    assert status == -signal.SIGKILL, output[-4000:]
    return workdir


def test_kill_then_resume_last_continues_the_run_with_its_data(world, capsys):
    configs = ["--config", str(ROOT / "configs/textcnn.yaml")]
    workdir = killed_fit(world, "resume-1proc", configs, max_steps=8, timeout=180)
    [killed] = run_dirs(workdir, "textcnn")
    assert last_step(killed) == 2
    capsys.readouterr()
    with contextlib.chdir(workdir):
        # What the README says to run: the experiment's config, `--ckpt_path last`, the budget; no data flag.
        cli = TextclsCLI(
            args=["fit", *configs, "--ckpt_path", "last", "--trainer.max_steps", "8", "--trainer.enable_progress_bar",
                  "false"]
        )  # fmt: skip
    out = "".join(capsys.readouterr()).replace("\n", "")
    taken = killed / "checkpoints" / "last.ckpt"
    assert str(taken) in out or str(taken.relative_to(workdir)) in out  # says which checkpoint it took
    data = cli.datamodule
    assert Path(data.train_file) == world["files"]["train"] and Path(data.val_file) == world["files"]["val"]
    assert (data.text_columns, data.label_column, data.max_length) == (["subject_line"], "category", 16)
    assert list(data.label_names) == sorted(LABELS)
    [_, resumed] = run_dirs(workdir, "textcnn")
    assert cli.trainer.global_step == 8 and last_step(resumed) == 8 > last_step(killed)


@pytest.fixture(scope="module")
def ddp_killed(world):
    configs = [*preset_pair("mlp.yaml")]
    return killed_fit(world, "resume-ddp", configs, max_steps=6, timeout=DDP_TIMEOUT)


def preset_pair(experiment: str) -> list[str]:
    return ["--config", str(ROOT / "configs" / experiment), *preset("ddp_cpu.yaml")]


def test_ddp_cpu_kill_then_resume_last_continues_the_run_with_its_data(world, ddp_killed):
    workdir = ddp_killed
    [killed] = run_dirs(workdir, "mlp")
    assert last_step(killed) == 2
    args = ["fit", *preset_pair("mlp.yaml"), "--ckpt_path", "last", "--trainer.max_steps", "6"]
    status, output = run_textcls(
        [*args, "--trainer.enable_progress_bar", "false"], workdir, DDP_TIMEOUT, workdir / "resumed.log"
    )
    assert status == 0, output[-4000:]
    [_, resumed] = run_dirs(workdir, "mlp")
    assert last_step(resumed) == 6 > last_step(killed)
    state = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["TextDataModule"]["label_names"] == sorted(LABELS)
    import yaml

    data = yaml.safe_load((resumed / "config.yaml").read_text())["data"]
    assert data["train_file"] == str(world["files"]["train"]) and data["text_column"] == "subject_line"
    assert data["label_column"] == "category"


@pytest.fixture(scope="module")
def ddp_steps(world):
    """`test`, `validate` and `predict` from the MLP's 32-true checkpoint, each with only the checkpoint and its input
    file (and the ddp_cpu preset), in one 2-process launch (tests/journeys.py:run_commands)."""
    best, files, root = checkpoint(world, "mlp"), world["files"], world["root"] / "ddp-steps"
    steps = {"test": "--data.test_file", "validate": "--data.val_file", "predict": "--data.predict_file"}
    inputs = {"test": files["test"], "validate": files["val"], "predict": files["predict"]}
    commands = [
        [step, *preset("ddp_cpu.yaml"), "--ckpt_path", str(best), option, str(inputs[step]), "--runs_root",
         str(root / step)]
        for step, option in steps.items()
    ]  # fmt: skip
    sections, records = one_launch(commands, root, timeout=DDP_TIMEOUT)
    return {step: (root / step, sections[i], records[i]) for i, step in enumerate(steps)}


@pytest.mark.parametrize("step,metric", [("test", "test/acc"), ("validate", "val/acc")])
def test_ddp_cpu_evaluation_needs_only_the_checkpoint_and_the_file(ddp_steps, step, metric):
    _, output, records = ddp_steps[step]
    assert [r["world_size"] for r in records] == [2, 2]
    assert metric in output and "Traceback" not in output


def test_ddp_cpu_predict_writes_one_file_in_input_order(world, ddp_steps):
    root, _, records = ddp_steps["predict"]
    assert [r["world_size"] for r in records] == [2, 2]
    rows = read_predictions(root)
    texts = input_texts(world["files"]["predict"])
    assert [int(r["id"]) for r in rows] == list(range(len(texts)))
    assert {r["label"] for r in rows} <= set(LABELS) and {f"p_{name}" for name in LABELS} <= set(rows[0])
