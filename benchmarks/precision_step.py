"""What mixed precision with gradient clipping costs per training step under `textcls fit`, against 32-true.

textcls clips fused-Adam gradients itself under mixed precision (TextClassifier.configure_gradient_clipping), so the
default configs (fused Adam, `gradient_clip_val: 1.0`) keep the fused kernel with bf16-mixed. This times, for each
network, the second epoch's training batches of: 32-true (fused, the default), bf16-mixed (fused, what textcls does),
and bf16-mixed with the unfused foreach Adam (the other way to make clipping legal). The variants alternate, order
flipping each round; medians of samples per CPU second of the training thread (one intra-op thread) and their ratio to
32-true, all from one run.

    .venv/bin/python benchmarks/precision_step.py [--models textcnn mlp] [--rounds 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import EpochTimer, cli_args

VARIANTS = {
    "32-true fused": ["--trainer.precision", "32-true"],
    "bf16-mixed fused": ["--trainer.precision", "bf16-mixed"],
    "bf16-mixed foreach": ["--trainer.precision", "bf16-mixed", "--model.optimizer.init_args.fused", "false"],
}


def samples_per_cpu_second(config: str, steps: int, batch_size: int, runs: str, extra: list[str]) -> float:
    from textcls.cli import TextclsCLI

    root = tempfile.mkdtemp(dir=runs)
    args = [*cli_args(config, steps, batch_size, runs, *extra), "--trainer.default_root_dir", root]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = TextclsCLI(args=args, run=False)
        timer = EpochTimer()
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.gradient_clip_val, "the experiment configs clip gradients"
    _, cpu, samples = timer.epochs[-1]
    return samples / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["textcnn", "mlp"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="training batches per epoch (2 epochs, 2nd timed)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 intra-op thread, batch {args.batch_size}, {args.steps} timed steps per run")
    with tempfile.TemporaryDirectory() as runs:
        for config in args.models:
            results: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for r in range(args.rounds):
                for name in VARIANTS if r % 2 == 0 else reversed(VARIANTS):
                    results[name].append(
                        samples_per_cpu_second(config, args.steps, args.batch_size, runs, VARIANTS[name])
                    )
            base = statistics.median(results["32-true fused"])
            for name, values in results.items():
                median = statistics.median(values)
                print(
                    f"{config:8s} {name:20s} {median:8.0f} samples/CPU s  {median / base:.3f}x of 32-true", flush=True
                )


if __name__ == "__main__":
    main()
