"""Every configs/optimizers/*.yaml through `textcls fit` (in-process): it trains both models with the kernel textcls
picks; Schedule-Free evaluates and checkpoints its eval weights and resumes bit-identically; sparse embeddings train
or end with one error line."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import schedulefree
import torch
from helpers import labelled_rows, main_error_line, write_rows
from training_probes import RecordWeights

from textcls.checkpoint import load_checkpoint
from textcls.cli import TextclsCLI
from textcls.inference import load_classifier
from textcls.schedule_free import TRAIN_WEIGHTS_KEY, ScheduleFreeModes

ROOT = Path(__file__).resolve().parents[2]
OPTIMIZERS = sorted(path.stem for path in (ROOT / "configs" / "optimizers").glob("*.yaml"))
FUSED = {"adam", "adamw", "adagrad", "sgd", "sgd_nesterov"}  # torch's fused CPU kernels
# On CPU the rest keep torch's per-tensor loop (textcls asks for foreach on GPUs only); lion_pytorch.Lion has no
# foreach switch at all (its foreach variant is another class).
EXPECTED_CLASS = {
    "adafactor": torch.optim.Adafactor,
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadamw": torch.optim.NAdam,
    "radamw": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "schedule_free_adamw": schedulefree.AdamWScheduleFree,
    "sgd": torch.optim.SGD,
    "sgd_nesterov": torch.optim.SGD,
}
SMALL = [
    "--model.model.init_args.embedding_dim", "8",
    "--data.batch_size", "8",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
    "--test_after_fit", "false",
]  # fmt: skip
WIDTH = {"textcnn": ["--model.model.init_args.num_filters", "4"], "mlp": ["--model.model.init_args.hidden_dims", "[8]"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_rows(root / "train.csv", labelled_rows(40)),  # 5 steps per epoch at batch 8
        "val": write_rows(root / "val.csv", labelled_rows(16, prefix="v")),
        "test": write_rows(root / "test.csv", labelled_rows(16, prefix="t")),
    }


def fit(runs: Path, data: dict[str, Path], optimizer: str, *extra: str, model: str = "textcnn") -> TextclsCLI:
    return TextclsCLI(
        args=[
            "fit",
            "--config", str(ROOT / "configs" / f"{model}.yaml"),
            "--config", str(ROOT / "configs" / "optimizers" / f"{optimizer}.yaml"),
            "--data.train_file", str(data["train"]),
            "--data.val_file", str(data["val"]),
            "--runs_root", str(runs),
            *SMALL,
            *WIDTH[model],
            *extra,
        ]
    )  # fmt: skip


def run_dir(cli: TextclsCLI) -> Path:
    return Path(cli.trainer.default_root_dir)


def last_checkpoint(cli: TextclsCLI) -> dict[str, Any]:
    return torch.load(run_dir(cli) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def step_losses(cli: TextclsCLI) -> dict[int, str]:
    with (run_dir(cli) / "metrics.csv").open() as handle:
        return {int(r["step"]): r["train/loss_step"] for r in csv.DictReader(handle) if r.get("train/loss_step")}


def probe(cli: TextclsCLI) -> RecordWeights:
    return next(c for c in cli.trainer.callbacks if isinstance(c, RecordWeights))  # type: ignore[attr-defined]


def kernel(optimizer: torch.optim.Optimizer) -> str:
    if optimizer.defaults.get("fused"):
        return "fused"
    return "foreach" if optimizer.defaults.get("foreach") else "loop"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_config_trains_both_models_with_its_kernel(name: str, tmp_path: Path, data) -> None:
    expected_kernel = "fused" if name in FUSED else "loop"
    for model in ("textcnn", "mlp"):
        cli = fit(
            tmp_path / model, data, name, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", model=model
        )
        [optimizer] = cli.trainer.optimizers  # type: ignore[attr-defined]
        if name == "lion":
            assert f"{type(optimizer).__module__}.{type(optimizer).__name__}" == "lion_pytorch.lion_pytorch.Lion"
        else:
            assert type(optimizer) is EXPECTED_CLASS[name], (model, type(optimizer))
        assert kernel(optimizer) == expected_kernel, (model, optimizer.defaults)
        losses = step_losses(cli)
        assert sorted(losses) == [0, 1] and all(math.isfinite(float(v)) for v in losses.values()), losses
        state = last_checkpoint(cli)["state_dict"]
        assert all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def test_schedule_free_evaluates_and_checkpoints_its_eval_weights(tmp_path: Path, data, capsys) -> None:
    # 7 steps: validation after step 5 (the epoch end), then a max_steps stop mid-epoch 1 (a train-mode save).
    cli = fit(tmp_path / "runs", data, "schedule_free_adamw", "--trainer.max_steps", "7",
              "--trainer.callbacks+=training_probes.RecordWeights")  # fmt: skip
    record = probe(cli)
    [optimizer] = cli.trainer.optimizers  # type: ignore[attr-defined]
    assert isinstance(optimizer, schedulefree.AdamWScheduleFree)
    assert any(isinstance(c, ScheduleFreeModes) for c in cli.trainer.callbacks)  # type: ignore[attr-defined]
    [validation] = record.validation
    beta1 = optimizer.param_groups[0]["betas"][0]
    # During validation the module holds x, not the y of the step before it; x is the package's eval formula.
    assert any(not torch.equal(validation[k], record.train[5][k]) for k in validation)
    z = {name: optimizer.state[p]["z"] for name, p in cli.model.named_parameters()}
    # after training ended (fit end) the module holds x of step 7: eval() was applied once
    final_y = record.train[7]
    for name, p in cli.model.named_parameters():
        assert torch.equal(p.detach(), final_y[name].lerp(z[name], 1 - 1 / beta1)), name

    # last.ckpt is the step-7 train-mode save: its state_dict holds eval() of its y, by the package's own eval()
    checkpoint = last_checkpoint(cli)
    assert checkpoint["global_step"] == 7
    y = checkpoint[TRAIN_WEIGHTS_KEY]["weights"]
    names = [name for name, _ in cli.model.named_parameters()]
    assert all(torch.equal(y[name], final_y[name]) for name in names)
    name_of = {id(p): name for name, p in cli.model.named_parameters()}
    fresh = {name: torch.nn.Parameter(y[name].clone()) for name in names}
    rebuilt = schedulefree.AdamWScheduleFree(
        [{"params": [fresh[name_of[id(p)]] for p in group["params"]]} for group in optimizer.param_groups]
    )
    rebuilt.load_state_dict(checkpoint["optimizer_states"][0])
    assert not any(g["train_mode"] for g in rebuilt.param_groups)  # the file's optimizer is marked eval, as its weights
    for group in rebuilt.param_groups:
        group["train_mode"] = True  # as in the run: y in the parameters
    rebuilt.eval()
    assert all(torch.equal(checkpoint["state_dict"][name], fresh[name].detach()) for name in names)
    assert any(not torch.equal(checkpoint["state_dict"][name], y[name]) for name in names)

    # the loader checks accept it, and what predict / export / serve load is x
    load_checkpoint(run_dir(cli) / "checkpoints" / "last.ckpt")
    classifier = load_classifier(run_dir(cli) / "checkpoints" / "last.ckpt")
    assert all(torch.equal(classifier.model.state_dict()[n.removeprefix("model.")], checkpoint["state_dict"][n])
               for n in names)  # fmt: skip

    # test from that mid-epoch checkpoint evaluates x
    last = run_dir(cli) / "checkpoints" / "last.ckpt"
    main_args = ["test", "--ckpt_path", str(last), "--data.test_file", str(data["test"]),
                 "--runs_root", str(tmp_path / "test-runs"), "--trainer.enable_progress_bar", "false",
                 "--trainer.callbacks+=training_probes.RecordWeights"]  # fmt: skip
    tested = probe(TextclsCLI(args=main_args))
    [weights] = tested.test
    assert all(torch.equal(weights[name], checkpoint["state_dict"][name]) for name in names)


@pytest.mark.parametrize("stop", [3, 5], ids=["mid-epoch", "epoch-end"])
def test_schedule_free_stop_and_resume_is_bit_identical(stop: int, tmp_path: Path, data) -> None:
    """Stop at step N by max_steps, resume from `last` to 2N, compare with a straight 2N run: every weight, the
    optimizer state, the saved y and the losses of the resumed steps."""
    total = 2 * stop
    straight = fit(tmp_path / "straight", data, "schedule_free_adamw", "--trainer.max_steps", str(total))
    runs = tmp_path / "runs"
    first = fit(runs, data, "schedule_free_adamw", "--trainer.max_steps", str(stop))
    assert last_checkpoint(first)["global_step"] == stop
    resumed = fit(runs, data, "schedule_free_adamw", "--trainer.max_steps", str(total), "--ckpt_path", "last")
    got, want = last_checkpoint(resumed), last_checkpoint(straight)
    assert got["global_step"] == want["global_step"] == total
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, tensor in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], tensor), f"{key} differs from the uninterrupted run"
    for index, state in want["optimizer_states"][0]["state"].items():
        assert all(torch.equal(got["optimizer_states"][0]["state"][index][k], v) for k, v in state.items())
    assert got["optimizer_states"][0]["param_groups"] == want["optimizer_states"][0]["param_groups"]
    for name, tensor in want.get(TRAIN_WEIGHTS_KEY, {}).get("weights", {}).items():
        assert torch.equal(got[TRAIN_WEIGHTS_KEY]["weights"][name], tensor), name
    # The same losses in the same order (after a stop at an epoch end Lightning labels the resumed steps one higher).
    after = [loss for step, loss in sorted(step_losses(straight).items()) if step >= stop]
    assert len(after) == stop and [loss for _, loss in sorted(step_losses(resumed).items())] == after


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_sparse_embeddings_train_or_end_with_one_line(name: str, tmp_path: Path, data, capsys) -> None:
    args = [
        "fit",
        "--config", str(ROOT / "configs" / "mlp.yaml"),
        "--config", str(ROOT / "configs" / "benchmarks" / "mlp_nb.yaml"),
        "--config", str(ROOT / "configs" / "optimizers" / f"{name}.yaml"),
        "--model.model.init_args.ngram_buckets", "997",
        "--data.train_file", str(data["train"]),
        "--runs_root", str(tmp_path / "runs"),
        "--trainer.max_steps", "2",
        "--trainer.limit_val_batches", "0",
        *SMALL,
    ]  # fmt: skip
    trains = {"adagrad", "lion"}  # the others: dense-only kernels, or SGD's momentum state that grows (DataError)
    if name not in trains:
        error = main_error_line(capsys, args)
        assert "--model.model.init_args.sparse true" in error and "torch.optim.Adagrad" in error, error
        return
    cli = TextclsCLI(args=args)
    assert cli.trainer.global_step == 2  # type: ignore[attr-defined]
    state = last_checkpoint(cli)["state_dict"]
    assert all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
