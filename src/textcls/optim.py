"""Optimizer and schedule pieces torch does not ship: weight-decay parameter groups, fused / foreach kernel selection,
and linear warmup followed by cosine decay per optimizer step."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from textcls.data.errors import DataError

# Parameter-group key marking embedding tables built with sparse=True; torch optimizers keep unknown keys as they are.
SPARSE_GROUP = "sparse_gradients"
_SPARSE_ADVICE = (
    "use --model.optimizer torch.optim.Adagrad, or torch.optim.SGD with momentum 0, without weight decay on the "
    "embeddings (--model.decay_embeddings false) and without fused; or set --model.model.init_args.sparse false."
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_LAZY_BATCH_NORMS = (nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)
_NO_DECAY_MODULES = (nn.LayerNorm, nn.GroupNorm, *_BATCH_NORMS, *_LAZY_BATCH_NORMS, nn.Embedding, nn.EmbeddingBag)


def parameter_groups(model: nn.Module, decay_embeddings: bool = False) -> list[dict[str, Any]]:
    """Two groups: weights that get the optimizer's weight decay, and biases / norm weights (and embeddings unless
    `decay_embeddings`) that get none, since shrinking those towards zero only hurts. Embedding tables built with
    `sparse=True` go into groups of their own marked `SPARSE_GROUP`, so `build_optimizer` can tell them apart."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for module in model.modules():
        embedding = isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        exempt_module = isinstance(module, _NO_DECAY_MODULES) and not (decay_embeddings and embedding)
        sparse = embedding and bool(getattr(module, "sparse", False))
        for param in module.parameters(recurse=False):
            if param.requires_grad:
                groups.setdefault((not exempt_module and param.ndim > 1, sparse), []).append(param)
    result: list[dict[str, Any]] = []
    for sparse in (False, True):  # dense groups first, in the order models without sparse tables always had
        for decays in (True, False):
            if groups.get((decays, sparse)):
                group: dict[str, Any] = {"params": groups[(decays, sparse)]}
                if not decays:
                    group["weight_decay"] = 0.0
                if sparse:
                    group[SPARSE_GROUP] = True
                result.append(group)
    return result


def build_optimizer(factory: Callable[..., Optimizer], params: Iterable[Any], device: torch.device) -> Optimizer:
    """Call the injected optimizer factory with the fastest kernel the user left open: `fused=True` (one kernel for
    all parameters) when `fused` is unset and the optimizer and device support it, else on a GPU `foreach=True` (one
    call per operation for all tensors) when `foreach` is unset; measured by benchmarks/optimizer_step.py.
    With sparse embedding groups (see `parameter_groups`) the optimizer is checked first, and built as configured."""
    params = list(params)
    if has_sparse_groups(params):
        # No fused kernel takes sparse gradients (Adam's, Adagrad's and SGD's all refuse them), and they refuse at the
        # first step, not when built, so the fallback below would not catch it. foreach is left alone too: torch
        # accepts it, but Adagrad hands a device's tensors to its per-tensor loop as soon as one gradient is sparse.
        check_sparse_optimizer(factory, params, device)
        return factory(params)
    if keyword_unset(factory, "fused"):
        try:  # torch checks the device and dtypes when the optimizer is built
            return factory(params, fused=True)
        except (TypeError, RuntimeError, ValueError):
            pass  # optimizer without a fused kernel (RMSprop) or a dtype/device it does not cover
    elif keyword_value(factory, "fused"):
        return factory(params)  # the user's fused kernel; torch refuses foreach beside it
    if device.type != "cpu" and keyword_unset(factory, "foreach"):
        # torch's own GPU default, which Schedule-Free's config loses (it inherits Adam's `foreach: null`). On CPU the
        # per-tensor loop stays: foreach did not beat it there (benchmarks/optimizer_step.py, docs/optimizers.md).
        try:
            return factory(params, foreach=True)
        except (TypeError, RuntimeError, ValueError):
            pass  # a device or dtype without foreach kernels
    return factory(params)


def has_sparse_groups(params: Iterable[Any]) -> bool:
    """Whether any parameter group holds embedding tables with sparse gradients (marked by `parameter_groups`)."""
    return any(isinstance(group, dict) and group.get(SPARSE_GROUP) for group in params)


def check_sparse_optimizer(
    factory: Callable[..., Optimizer], groups: list[dict[str, Any]], device: torch.device
) -> None:
    """Raise DataError naming the options when the optimizer cannot train sparse embedding gradients next to the
    dense gradients of the other layers.

    Decided by one step on stand-ins (a 2-row parameter per group, with the group's options and gradient kind), not
    by a list of names, so it holds for any optimizer and options; a sparse state that grows every step is refused too.
    """
    if not torch.sparse.check_sparse_tensor_invariants.is_enabled():
        # Adagrad builds sparse tensors every step, and torch warns ("Memory errors (e.g. SEGFAULT) will occur")
        # until the default (no checks) is chosen explicitly; the stand-ins and the embedding gradients are valid ones.
        torch.sparse.check_sparse_tensor_invariants.disable()
    stand_ins = []
    for group in groups:
        param = nn.Parameter(torch.zeros(2, 1, device=device))
        if group.get(SPARSE_GROUP):
            param.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.ones(1, 1), (2, 1), device=device)
        else:
            param.grad = torch.ones_like(param)
        stand_ins.append({**group, "params": [param]})
    optimizer = factory(stand_ins)  # a constructor error is not about sparsity: the real call would raise it too
    name = type(optimizer).__name__  # the factory is a chain of jsonargparse partials that hides the class
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()  # type: ignore[attr-defined]  # Schedule-Free optimizers refuse a step in eval mode (textcls.schedule_free switches them)
    try:
        optimizer.step()
    except (RuntimeError, ValueError, TypeError) as err:
        reason = str(err).split(", please consider")[0]  # torch's advice (SparseAdam <-> Adam) does not apply here
        # A kernel missing for sparse tensors (Schedule-Free's addcmul_) comes with a page on dispatch backends.
        reason = reason.strip().splitlines()[0].split(". This could be because")[0].rstrip(".")
        raise DataError(
            f"invalid configuration: --model.optimizer {name} cannot train the sparse embeddings of "
            f"--model.model.init_args.sparse true together with the dense classifier layers ({reason}); "
            + _SPARSE_ADVICE
        ) from None
    states = [value for state in optimizer.state.values() for value in state.values()]
    if any(torch.is_tensor(value) and value.is_sparse for value in states):
        raise DataError(
            f"invalid configuration: --model.optimizer {name} keeps a sparse state for the sparse embeddings of "
            f"--model.model.init_args.sparse true that grows at every step (SGD's momentum); {_SPARSE_ADVICE}"
        )


def check_gradient_clipping(groups: Iterable[Any], gradient_clip_val: float | None) -> None:
    """Raise DataError when gradient clipping is asked for sparse embedding gradients: torch's clip_grad_norm_ and
    clip_grad_value_, which Lightning's `gradient_clip_val` calls, have no sparse kernels and fail at the first step."""
    if gradient_clip_val and has_sparse_groups(groups):
        raise DataError(
            f"invalid configuration: --trainer.gradient_clip_val {gradient_clip_val} cannot clip the sparse gradients "
            "of --model.model.init_args.sparse true (torch has no norm for sparse gradients); pass "
            "--trainer.gradient_clip_val null, or set sparse false."
        )


def keyword_unset(factory: Callable[..., Any], name: str) -> bool:
    """Whether `factory` accepts keyword `name` and the user left it at None, so textcls may fill it in."""
    keywords = getattr(factory, "keywords", None)
    if keywords is not None:  # jsonargparse hands a functools.partial with every default filled in
        return name in keywords and keywords[name] is None
    try:
        parameter = inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is None


def optimizer_class(factory: Callable[..., Any]) -> type | None:
    """The class an optimizer factory builds: the factory itself, or the class inside jsonargparse's partial (which
    holds it as an argument of its instantiator); None when it cannot be told without calling the factory."""
    current: Any = factory
    for _ in range(8):  # partials of partials, never deep
        if isinstance(current, type):
            return current
        classes = [arg for arg in getattr(current, "args", ()) if isinstance(arg, type)]
        if len(classes) == 1:
            return classes[0]
        current = getattr(current, "func", None)
        if current is None:
            return None
    return None


def keyword_value(factory: Callable[..., Any], name: str) -> Any:
    """The value `factory` passes for keyword `name` (its default when not given), or None when it has no such one."""
    keywords = getattr(factory, "keywords", None)
    if keywords is not None:
        return keywords.get(name)
    try:
        parameter = inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


class WarmupCosine(LambdaLR):
    """Linear warmup from 0 to the optimizer's lr, then cosine decay to `min_lr_ratio` x lr, stepped per batch.

    Args:
        optimizer: the wrapped optimizer.
        total_steps: length of the whole schedule in optimizer steps; unset means the trainer's estimate.
        warmup_fraction: share of `total_steps` spent warming up.
        warmup_steps: warm-up length in steps; overrides `warmup_fraction` when set.
        min_lr_ratio: final learning rate as a fraction of the peak.
        on_resume: when a resumed run is longer or shorter than the one its checkpoint planned (e.g. a larger
            `--trainer.max_epochs`), "replan" fits warmup and decay to the new length from the step reached;
            "keep" keeps the checkpoint's schedule (past its end the rate stays at `min_lr_ratio` x lr).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        warmup_fraction: float = 0.1,
        warmup_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        on_resume: Literal["replan", "keep"] = "replan",
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None or total_steps < 1:
            raise ValueError(f"WarmupCosine needs total_steps >= 1, got {total_steps}.")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}.")
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps if warmup_steps is not None else round(warmup_fraction * total_steps))
        self.min_lr_ratio = min_lr_ratio
        if on_resume not in ("replan", "keep"):
            raise ValueError(f"on_resume must be 'replan' or 'keep', got {on_resume!r}.")
        self.on_resume = on_resume
        super().__init__(optimizer, self.factor, last_epoch)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        planned = (self.total_steps, self.warmup_steps)
        super().load_state_dict(state_dict)
        if state_dict.get("total_steps") in (None, planned[0]):
            return
        step, old_total = self.last_epoch, self.total_steps
        if self.on_resume == "replan":
            self.total_steps, self.warmup_steps = planned
            for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * self.factor(step)  # the first resumed step already uses the new plan
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
            rank_zero_info(
                f"WarmupCosine: resumed at step {step} of a {old_total}-step schedule; re-planned over {planned[0]} "
                "steps (the run's new length). Pass --model.lr_scheduler.init_args.on_resume keep to keep the old one."
            )
        else:
            rank_zero_info(
                f"WarmupCosine: resumed at step {step}; keeping the checkpoint's {old_total}-step schedule although "
                f"the run is now {planned[0]} steps (on_resume keep); past step {old_total} it stays at the floor."
            )

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def clip_gradients(precision: Any, optimizer: Optimizer, clip_val: float, algorithm: Any) -> None:
    """Clip gradients for any optimizer, fused kernels included, under every precision.

    Lightning's mixed-precision plugin refuses to clip for an optimizer that unscales inside its own step (every fused
    kernel), whether or not there is a loss scaler. Without a scaler (bf16-mixed, 32-true) nothing is scaled, so
    clipping is plain clipping. With one (16-mixed) the gradients are unscaled first, as torch's AMP recipe does before
    clipping; GradScaler.step then sees them unscaled and passes the fused step no scale, only the inf check.
    """
    scaler = getattr(precision, "scaler", None)
    if scaler is not None and any(group.get("fused") for group in optimizer.param_groups):
        scaler.unscale_(optimizer)
    # The base plugin's clipping: the same norm / value clipping Lightning applies, without the fused-kernel refusal.
    Precision.clip_gradients(precision, optimizer, clip_val=clip_val, gradient_clip_algorithm=algorithm)
