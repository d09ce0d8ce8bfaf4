"""Every preset in configs/trainer/ parses on top of an experiment, and runs where this CPU allows it.

The single-process CPU presets (cpu, early_stopping, the three precisions) take real steps with every experiment config
in test_journeys.py's fit cells; here ddp_cpu takes real steps with every experiment config (2 processes each), and
the GPU presets take one optimizer step with the accelerator set to cpu and the rest of the preset as written
(precision, strategy, data loading), or, where Lightning refuses (FSDP without a GPU, DeepSpeed without CUDA), fail
with that refusal as one error line."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import torch
from journeys import (
    CPU_PRESETS,
    FEW_STEPS,
    MODELS,
    PRECISIONS,
    fit_data,
    model_args,
    one_launch,
    preset,
    write_ticket_files,
)
from jsonargparse import Namespace
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.strategies import DDPStrategy, FSDPStrategy

from textcls.cli import TextclsCLI, main
from textcls.training import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.name for p in (ROOT / "configs/trainer").glob("*.yaml"))
GPU_PRESETS = {"gpu.yaml", "ddp.yaml", "fsdp.yaml", "deepspeed.yaml", "multinode.yaml"}


class ParseOnly(TextclsCLI):
    """Parses (config files, links, defaults) but builds nothing and makes no run directory."""

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parse(*configs: str) -> Namespace:
    args = ["--config", str(ROOT / "configs/textcnn.yaml")]
    for config in configs:
        args += ["--config", str(ROOT / "configs/trainer" / config)]
    return ParseOnly(args=args, run=False).config


def test_every_preset_is_covered():
    assert set(PRESETS) >= GPU_PRESETS | {"cpu.yaml", "ddp_cpu.yaml", "early_stopping.yaml"}
    assert {"precision-32-true.yaml", "precision-bf16-mixed.yaml", "precision-16-mixed.yaml"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_parses_on_top_of_the_default_experiment(preset):
    config = parse(preset)
    assert config.trainer.gradient_clip_val == 1.0 and config.trainer.accumulate_grad_batches == 1  # kept from below
    if preset in GPU_PRESETS:
        assert config.trainer.accelerator == "gpu" and config.trainer.precision == "bf16-mixed"


def build(tmp_path, *configs: str, extra: tuple[str, ...] = ()) -> TextclsCLI:
    args = ["--config", str(ROOT / "configs/textcnn.yaml")]
    for config in configs:
        args += ["--config", str(ROOT / "configs/trainer" / config)]
    args += ["--trainer.default_root_dir", str(tmp_path), "--model.model.init_args.num_filters", "8", *extra]
    return TextclsCLI(args=args, run=False)


def test_ddp_cpu_preset_builds_a_two_process_gloo_trainer(tmp_path):
    trainer = build(tmp_path, "ddp_cpu.yaml").trainer
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_devices == 2 and trainer.strategy._process_group_backend in (None, "gloo")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


@pytest.mark.parametrize(
    "preset,expected",
    [
        ("precision-32-true.yaml", "32-true"),
        ("precision-bf16-mixed.yaml", "bf16-mixed"),
        ("precision-16-mixed.yaml", "bf16-mixed"),
    ],
)
def test_precision_presets_build_on_cpu(tmp_path, preset, expected):
    # 16-mixed has no CPU autocast: Lightning turns it into bf16-mixed on CPU (and warns).
    trainer = build(tmp_path, "cpu.yaml", preset).trainer
    assert trainer.precision == expected


def test_early_stopping_preset_watches_the_chosen_metric(tmp_path):
    cli = build(
        tmp_path,
        "early_stopping.yaml",
        extra=("--trainer.callbacks.monitor", "val/loss", "--trainer.callbacks.mode", "min"),
    )
    [stopper] = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert stopper.monitor == "val/loss" and stopper.mode == "min" and stopper.patience == 3


def test_fsdp_preset_strategy_is_built_as_configured():
    init = parse("fsdp.yaml").trainer.strategy.init_args
    strategy = FSDPStrategy(**{k: v for k, v in vars(init).items() if v is not None})
    assert strategy.sharding_strategy.name == "FULL_SHARD" and strategy._state_dict_type == "full"
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match=r"(?i)fsdp|gpu|cuda|accelerator"):
            build(Path("/tmp"), "fsdp.yaml", extra=("--trainer.accelerator", "cpu", "--trainer.devices", "1"))


def test_deepspeed_preset_is_zero_stage_2():
    config = parse("deepspeed.yaml")
    assert config.trainer.strategy.class_path.endswith("DeepSpeedStrategy")
    assert config.trainer.strategy.init_args.stage == 2
    assert config.trainer.plugins is None  # DeepSpeed writes its own checkpoint directories
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is an optional extra (pip install -e '.[deepspeed]') and needs CUDA")
    from pytorch_lightning.strategies import DeepSpeedStrategy

    assert DeepSpeedStrategy(stage=2).config["zero_optimization"]["stage"] == 2


def test_every_preset_takes_steps_somewhere():
    stepped = {*CPU_PRESETS, *(f"precision-{p}.yaml" for p in PRECISIONS), "ddp_cpu.yaml", *GPU_STEPS}
    assert stepped | set(REFUSED_ON_CPU) == set(PRESETS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield write_ticket_files(root / "data")


@pytest.fixture(scope="module")
def ddp_fits(files, tmp_path_factory):
    """Every experiment config fitted under ddp_cpu, in one 2-process launch (tests/journeys.py:run_commands)."""
    root = tmp_path_factory.mktemp("ddp_fits")
    commands = [
        ["fit", *model_args(model, files), *preset("ddp_cpu.yaml"), *fit_data(files), *FEW_STEPS,
         "--trainer.max_steps", "2", "--runs_root", str(root / model)]
        for model in MODELS
    ]  # fmt: skip
    _, records = one_launch(commands, root, timeout=600)
    return root, dict(zip(MODELS, records, strict=True))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", list(MODELS))
def test_ddp_cpu_preset_takes_real_steps_with_every_experiment_config(model, ddp_fits):
    root, records = ddp_fits
    assert sorted((r["world_size"], r["global_step"]) for r in records[model]) == [(2, 2), (2, 2)]  # both ranks
    [last] = (root / model).glob("*/*/checkpoints/last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2


@pytest.fixture
def restored_environment():
    """Lightning's DDP launcher exports MASTER_PORT, LOCAL_RANK, WORLD_SIZE ... and leaves a process group behind;
    a later DDP launch from this process (or a subprocess inheriting them) would take them for its own."""
    saved = dict(os.environ)
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(saved)


# GPU preset -> what one optimizer step on this CPU checks (besides the preset's precision and clipping settings)
GPU_STEPS = {"gpu.yaml": None, "ddp.yaml": DDPStrategy, "multinode.yaml": DDPStrategy}
REFUSED_ON_CPU = {
    "fsdp.yaml": r"strategy `fsdp` requires a GPU accelerator",
    # Lightning asks for the package before it asks for CUDA; with the package installed, it refuses the CPU
    "deepspeed.yaml": r"must have DeepSpeed installed|only supported on (CUDA )?GPU",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GPU_STEPS))
def test_gpu_preset_takes_one_step_on_cpu(name, files, tmp_path, restored_environment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_cpu = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
    args = ["fit", *model_args("textcnn", files), *preset(name), *on_cpu, *fit_data(files), *FEW_STEPS]
    cli = TextclsCLI(args=[*args, "--trainer.max_steps", "1"])
    trainer = cli.trainer
    assert trainer.global_step == 1 and trainer.precision == "bf16-mixed" and trainer.gradient_clip_val == 1.0
    assert cli.datamodule.num_workers == 2 and cli.datamodule.pin_memory  # the preset's data loading, as written
    if GPU_STEPS[name] is not None:
        assert isinstance(trainer.strategy, GPU_STEPS[name])


@pytest.mark.slow
def test_a_ddp_run_leaves_no_process_group_behind(files, tmp_path, restored_environment, monkeypatch):
    from textcls.cli import main

    monkeypatch.chdir(tmp_path)
    on_cpu = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
    main(["fit", *model_args("textcnn", files), *preset("ddp.yaml"), *on_cpu, *fit_data(files), *FEW_STEPS])
    assert list(tmp_path.glob("runs/textcnn/*/checkpoints/last.ckpt")), "the run did not train"
    assert not torch.distributed.is_initialized()  # gloo's threads are joined before the interpreter exits


def test_multinode_preset_builds_for_two_nodes():
    # Stepping two nodes takes two launches: tests/integration/test_ddp.py runs them on loopback.
    config = parse("multinode.yaml").trainer
    assert config.num_nodes == 2 and config.strategy == "ddp" and config.devices == -1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REFUSED_ON_CPU))
def test_gpu_only_preset_is_refused_on_cpu_in_one_line(name, files, tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the preset runs")
    monkeypatch.chdir(tmp_path)
    on_cpu = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *model_args("textcnn", files), *preset(name), *on_cpu, *fit_data(files), *FEW_STEPS])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert re.search(REFUSED_ON_CPU[name], err), err
    assert not list(tmp_path.glob("runs/*/*")), "a refused run leaves no run directory"
