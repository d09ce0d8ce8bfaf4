"""Time one optimizer step on CPU for every optimizer of configs/optimizers, with each kernel it has (fused, foreach,
the per-tensor for-loop), and measure its state memory in bytes per parameter.

Why it matters: textcls asks for `fused=True` where the optimizer and device have it, else `foreach=True`
(textcls.optim.build_optimizer). Every implementation of one parameter set is stepped in the same rounds, one step
of each per round, so a noisy shared machine slows them alike; the table shows the median per step.

    .venv/bin/python benchmarks/optimizer_step.py [--sets textcnn,10m] [--repeats 20] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import lion_pytorch
import lion_pytorch.foreach
import schedulefree
import torch

# name: (class, arguments of its configs/optimizers file, kernels it has on CPU)
OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], dict[str, Any], tuple[str, ...]]] = {
    "SGD": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, ("fused", "foreach", "loop")),
    "SGD Nesterov": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, ("fused", "foreach", "loop")),
    "RMSprop": (torch.optim.RMSprop, {"lr": 1e-3}, ("foreach", "loop")),
    "Adagrad": (torch.optim.Adagrad, {"lr": 0.01}, ("fused", "foreach", "loop")),
    "Adam": (torch.optim.Adam, {"lr": 1e-3}, ("fused", "foreach", "loop")),
    "AdamW": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.01}, ("fused", "foreach", "loop")),
    "NAdamW": (
        torch.optim.NAdam,
        {"lr": 1e-3, "weight_decay": 0.01, "decoupled_weight_decay": True},
        ("foreach", "loop"),
    ),
    "RAdamW": (
        torch.optim.RAdam,
        {"lr": 1e-3, "weight_decay": 0.01, "decoupled_weight_decay": True},
        ("foreach", "loop"),
    ),
    "Adafactor": (torch.optim.Adafactor, {"lr": 0.01}, ("foreach", "loop")),
    "SF-AdamW": (schedulefree.AdamWScheduleFree, {"lr": 0.0025, "weight_decay": 0.01}, ("foreach", "loop")),
    "Lion": (lion_pytorch.Lion, {"lr": 1e-4, "weight_decay": 0.1}, ("loop",)),
    # lion-pytorch's foreach variant is another class (textcls's config names lion_pytorch.Lion)
    "Lion (foreach class)": (lion_pytorch.foreach.Lion, {"lr": 1e-4, "weight_decay": 0.1}, ("foreach",)),
}


def textcnn_shapes(vocab: int = 20_000, dim: int = 300, filters: int = 100, classes: int = 4) -> list[tuple[int, ...]]:
    """Kim's TextCNN: an embedding table, three conv widths (weights and biases), the linear classifier."""
    convs = [shape for k in (3, 4, 5) for shape in ((filters, dim, k), (filters,))]
    return [(vocab, dim), *convs, (classes, 3 * filters), (classes,)]


def ten_million_shapes(total: int = 10_000_000) -> list[tuple[int, ...]]:
    """The earlier figure's set: a (flattened) table holding most parameters plus a few small tensors."""
    return [(total - 200_000, 1), (100, 128, 3), (100, 128, 4), (100, 128, 5), (300, 4), (100,), (4,)]


def build(name: str, kernel: str, shapes: list[tuple[int, ...]]) -> torch.optim.Optimizer:
    cls, kwargs, _ = OPTIMIZERS[name]
    params = [torch.nn.Parameter(torch.randn(shape) * 0.02) for shape in shapes]
    extra: dict[str, Any] = {}
    if kernel == "fused":
        extra = {"fused": True}
    elif cls is not lion_pytorch.Lion and cls is not lion_pytorch.foreach.Lion:
        extra = {"foreach": kernel == "foreach"}
    optimizer = cls(params, **kwargs, **extra)
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()  # Schedule-Free steps only in train mode
    return optimizer


def state_bytes_per_param(optimizer: torch.optim.Optimizer) -> float:
    """Bytes of every tensor in the optimizer state (after a step) per parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total = sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value)
    )
    return total / sum(p.numel() for p in params)


def interleaved_medians(optimizers: dict[str, torch.optim.Optimizer], repeats: int) -> dict[str, float]:
    """One step of each implementation per round, rounds repeated: a noisy, shared machine slows all of them alike."""
    generator = torch.Generator().manual_seed(0)
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.randn(p.shape, generator=generator) * 0.01
        for _ in range(2):  # warm-up: optimizer state is allocated on the first step
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
    parser.add_argument("--sets", default="textcnn,10m", help="parameter sets: textcnn (20k x 300 + convs), 10m")
    parser.add_argument("--repeats", type=int, default=20, help="interleaved rounds per optimizer and set")
    parser.add_argument("--quick", action="store_true", help="smoke run: small parameter sets, 3 rounds")
    args = parser.parse_args()
    torch.manual_seed(0)
    sets = {
        "textcnn": textcnn_shapes(vocab=2_000, dim=32) if args.quick else textcnn_shapes(),
        "10m": ten_million_shapes(300_000) if args.quick else ten_million_shapes(),
    }
    repeats = 3 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats} interleaved rounds")
    for set_name in args.sets.split(","):
        shapes = sets[set_name]
        count = sum(torch.Size(s).numel() for s in shapes)
        print(f"\n{set_name}: {count:,} parameters in {len(shapes)} tensors")
        print(f"{'optimizer':<21} {'kernel':<8} {'median ms':>10} {'vs loop':>8} {'state B/param':>14}")
        for name, (_, _, kernels) in OPTIMIZERS.items():
            optimizers = {kernel: build(name, kernel, shapes) for kernel in kernels}
            medians = interleaved_medians(optimizers, repeats)
            for kernel, seconds in medians.items():
                ratio = f"{medians['loop'] / seconds:.2f}x" if "loop" in medians else "-"
                memory = state_bytes_per_param(optimizers[kernel])
                print(f"{name:<21} {kernel:<8} {seconds * 1e3:>10.2f} {ratio:>8} {memory:>14.2f}")
            del optimizers


if __name__ == "__main__":
    main()
