"""Multi-label with real processes: SIGKILL mid-epoch then `--ckpt_path last` ends bit-identical to an uninterrupted
run (thresholds included), and a 2-process `ddp_cpu` fit evaluates every example once, with the same macro-F1 as one
process validating its checkpoint. The three first runs are independent, so they run at once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from helpers import last_metrics
from multilabel_data import COLUMNS, tag_rows, write_tags
from test_ddp import finish, start

from textcls.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
N_TRAIN, N_VAL = 240, 61  # 15 steps per epoch at batch 16; an odd dev set, which a padding sampler would repeat
EPOCHS, STEPS = 2, 30


def fit_args(runs: Path, files: dict, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(ROOT / "configs/mlp.yaml"), "--data.train_file", str(files["train"]),
        "--data.val_file", str(files["val"]), *COLUMNS, "--runs_root", str(runs),
        "--trainer.max_epochs", str(EPOCHS), "--data.batch_size", "16", "--trainer.enable_progress_bar", "false",
        "--trainer.deterministic", "true", "--test_after_fit", "false", "--checkpoint.last_every_n_train_steps", "5",
        "--model.class_weights", "balanced", *extra,
    ]  # fmt: skip


def probe(name: str, **init_args: object) -> list[str]:
    args = [f"--trainer.callbacks+=training_probes.{name}"]
    for key, value in init_args.items():
        args += [f"--trainer.callbacks.{key}", str(value)]
    return args


def run_dir(runs: Path, index: int = -1) -> Path:
    return sorted(p for p in (runs / "mlp").iterdir() if p.is_dir())[index]


def last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel-processes")
    files = {
        "train": write_tags(root / "data" / "train.jsonl", tag_rows(N_TRAIN)),
        "val": write_tags(root / "data" / "val.jsonl", tag_rows(N_VAL, prefix="v")),
    }
    cache = {"XDG_CACHE_HOME": str(root / "cache")}
    reference = start(fit_args(root / "reference", files, *probe("TraceSteps", path=root / "trace.jsonl")), **cache)
    killed = start(fit_args(root / "killed", files, *probe("KillAt", phase="train", step=18)), **cache)
    ddp_args = ["--data.batch_size", "8", "--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]
    ddp = start(fit_args(root / "ddp", files, *probe("RecordEvalRows", out_dir=root / "rows"), *ddp_args), **cache)
    finish(reference, ddp, timeout=400)
    killed.communicate(timeout=400)
    assert killed.returncode == -signal.SIGKILL
    return {"root": root, "files": files, "cache": cache}


def test_kill_then_resume_last_matches_the_uninterrupted_run(launched):
    root, files = launched["root"], launched["files"]
    stopped = last(run_dir(root / "killed"))["global_step"]
    assert stopped == 15
    finish(start(fit_args(root / "killed", files, "--ckpt_path", "last"), **launched["cache"]), timeout=300)
    got, want = last(run_dir(root / "killed")), last(run_dir(root / "reference"))
    assert got["global_step"] == want["global_step"] == STEPS
    for key, tensor in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], tensor), f"{key} differs from the uninterrupted run"
    assert not torch.equal(want["state_dict"]["thresholds"], torch.full((4,), 0.5))  # tuned, and equal above
    for i, state in want["optimizer_states"][0]["state"].items():
        assert all(torch.equal(got["optimizer_states"][0]["state"][i][k], v) for k, v in state.items())
    final = {k: v for k, v in last_metrics(run_dir(root / "reference")).items() if not k.endswith("_step")}
    resumed = last_metrics(run_dir(root / "killed"))
    assert {k: resumed[k] for k in final} == final


def test_ddp_cpu_counts_each_example_once_and_matches_one_process(launched, tmp_path, monkeypatch):
    root = launched["root"]
    rows: list[int] = []
    parts = sorted((root / "rows").glob(f"val-e{EPOCHS - 1}-r*.json"))
    for part in parts:
        rows += json.loads(part.read_text())
    assert len(parts) == 2 and sorted(rows) == list(range(N_VAL))
    run = run_dir(root / "ddp")
    assert last(run)["global_step"] == EPOCHS * (N_TRAIN // 16)  # 8 per process: the same global batch
    # One process validating the DDP checkpoint tunes and scores on the same counts (in-process: not the subject).
    monkeypatch.setenv("XDG_CACHE_HOME", launched["cache"]["XDG_CACHE_HOME"])
    monkeypatch.chdir(tmp_path)
    main(["validate", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.val_file",
          str(launched["files"]["val"]), "--runs_root", str(tmp_path / "check"), "--trainer.enable_progress_bar",
          "false"])  # fmt: skip
    [validated] = [p for p in (tmp_path / "check").glob("*/*") if p.is_dir()]
    ddp, one = last_metrics(run), last_metrics(validated)
    for key in ("val/loss", "val/f1_macro", "val/f1_micro", "val/map"):
        assert one[key] == pytest.approx(ddp[key], abs=1e-6), key
