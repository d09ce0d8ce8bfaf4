"""Every preset in configs/trainer/ parses on top of an experiment; the CPU ones build a real Trainer here, the GPU
ones (Lightning refuses FSDP and DeepSpeed without CUDA) are checked as parsed and their strategy built as far as
this machine allows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from jsonargparse import Namespace
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.strategies import DDPStrategy, FSDPStrategy

from textcls.cli import TextclsCLI
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
