"""Time one optimizer step on CPU: torch's default implementation against foreach and the fused kernel.

Why it matters: textcls asks for `fused=True` wherever the optimizer and device support it (textcls.optim). This
prints the median step time of each implementation, measured in the same run, and the ratio to the default.

    .venv/bin/python benchmarks/optimizer_step.py [--params 10_000_000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def interleaved_medians(optimizers: dict[str, torch.optim.Optimizer], repeats: int) -> dict[str, float]:
    """One step of each implementation per round, rounds repeated: a noisy, shared machine slows all of them alike."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.randn_like(p)
        for _ in range(3):  # warm-up: optimizer state is allocated on the first step
            optimizer.step()
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(repeats):
        for name, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=10_000_000, help="total parameters, split like a TextCNN")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    # An embedding table holding most parameters plus a few small tensors, as in the textcls models.
    shapes = [(args.params - 200_000, 1), (100, 128, 3), (100, 128, 4), (100, 128, 5), (300, 4), (100,), (4,)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.params:,} parameters")
    print(f"{'optimizer':<10} {'implementation':<16} {'median ms':>10} {'vs default':>11}")
    for name, cls in [("Adam", torch.optim.Adam), ("AdamW", torch.optim.AdamW), ("SGD", torch.optim.SGD)]:
        extra = {"momentum": 0.9} if cls is torch.optim.SGD else {}
        variants = {"default": extra, "foreach": {**extra, "foreach": True}, "fused": {**extra, "fused": True}}
        optimizers = {
            label: cls([torch.nn.Parameter(torch.zeros(s).flatten()) for s in shapes], lr=1e-3, **kwargs)
            for label, kwargs in variants.items()
        }
        medians = interleaved_medians(optimizers, args.repeats)
        for label, seconds in medians.items():
            print(f"{name:<10} {label:<16} {seconds * 1e3:>10.2f} {medians['default'] / seconds:>10.2f}x")
        del optimizers


if __name__ == "__main__":
    main()
