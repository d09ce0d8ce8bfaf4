"""Schedule-Free optimizers (the `schedulefree` package) keep two points: y, where gradients are taken, and x, the
average that evaluates best; `optimizer.train()` puts y into the parameters, `optimizer.eval()` puts x. This callback
puts each in force at the right time, and makes every checkpoint hold x while a resumed fit still continues from y."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch.optim import Optimizer

#: top-level checkpoint entry with the train weights y (and the optimizer's train-mode flags) of a train-mode save
TRAIN_WEIGHTS_KEY = "schedule_free_train_weights"


def has_modes(optimizer: Any) -> bool:
    """Whether the optimizer has train and eval modes (AdamWScheduleFree, SGDScheduleFree, RAdamScheduleFree)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def in_train_mode(optimizer: Optimizer) -> bool:
    """The `schedulefree` convention: each parameter group's "train_mode" flag, set by train() and cleared by eval()."""
    return any(group.get("train_mode", False) for group in optimizer.param_groups)


class ScheduleFreeModes(Callback):
    """Train mode for every optimizer step, eval mode for validation, test, predict, after fit and in checkpoints.

    A no-op for optimizers without `train` / `eval` methods. The switch to eval happens at validation start, the
    switch back at the next training batch, so a fit resumed from a checkpoint written after validation repeats the
    same switches as the uninterrupted run. A checkpoint written in train mode (mid-epoch, at a max_steps stop, on
    SIGTERM) holds x in its `state_dict` (what test, predict, export and serve load) and an optimizer state marked
    eval; it also keeps y under `TRAIN_WEIGHTS_KEY`, which a resumed fit puts back after Lightning has restored the
    optimizer, so it continues bit-identically. Assumes, as `schedulefree` does, that eval() and train() change only
    the parameters and the parameter groups' flags, not the optimizer state.
    """

    def __init__(self) -> None:
        self._resume: dict[str, Any] | None = None

    @staticmethod
    def _switch(trainer: pl.Trainer, mode: str) -> None:
        for optimizer in trainer.optimizers:
            if has_modes(optimizer):
                getattr(optimizer, mode)()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        self._switch(trainer, "train")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._switch(trainer, "eval")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._switch(trainer, "eval")

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._switch(trainer, "eval")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After every save of the fit (ModelCheckpoint's on_train_end included): the module a fit hands back holds x.
        self._switch(trainer, "eval")

    @torch.no_grad()
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Lightning has collected the weights and optimizer state already, so x is computed here and written over them.
        names: dict[int, list[str]] = {}
        for name, param in pl_module.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), []).append(name)
        weights: dict[str, torch.Tensor] = {}
        flags: dict[str, list[dict[str, Any]]] = {}
        saved_states = checkpoint.get("optimizer_states")
        for index, optimizer in enumerate(trainer.optimizers):
            if not (has_modes(optimizer) and in_train_mode(optimizer)):
                continue
            params = [p for group in optimizer.param_groups for p in group["params"]]
            train_weights = [p.detach().clone() for p in params]
            train_groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            optimizer.eval()  # type: ignore[attr-defined]  # the optimizer's own formula for x, so the file holds exactly what eval() gives
            changed = [
                {k: v for k, v in group.items() if k != "params" and v is not train[k]}
                for group, train in zip(optimizer.param_groups, train_groups, strict=True)
            ]
            for param, train_weight in zip(params, train_weights, strict=True):
                for name in names.get(id(param), []):
                    if name in checkpoint["state_dict"]:
                        checkpoint["state_dict"][name] = param.detach().clone()
                    weights[name] = train_weight
                param.copy_(train_weight)  # y back, bit for bit (train() would recompute it with rounding)
            for group, train in zip(optimizer.param_groups, train_groups, strict=True):
                group.update(train)
            if saved_states is not None:  # the file's optimizer agrees with its weights: eval mode
                for saved, values in zip(saved_states[index]["param_groups"], changed, strict=True):
                    saved.update(values)
                pairs = zip(changed, train_groups, strict=True)
                flags[str(index)] = [{k: train[k] for k in values} for values, train in pairs]
        if weights and saved_states is not None:  # only a checkpoint a fit can resume from needs y
            checkpoint[TRAIN_WEIGHTS_KEY] = {"weights": weights, "param_groups": flags}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._resume = checkpoint.get(TRAIN_WEIGHTS_KEY)

    @torch.no_grad()
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning restored the optimizer (marked eval, beside the weights x) just before this hook.
        resume, self._resume = self._resume, None
        if resume is None:
            return
        params = dict(pl_module.named_parameters(remove_duplicate=False))
        for name, weight in resume["weights"].items():
            params[name].copy_(weight)
        for index, groups in resume["param_groups"].items():
            for group, values in zip(trainer.optimizers[int(index)].param_groups, groups, strict=True):
                group.update(values)
