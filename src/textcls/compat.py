"""Every use of Lightning's, torch's or W&B's private API in textcls, one small piece each (tests/unit/test_compat.py
checks each assumption and names the upstream change when one breaks). Nothing else in src/ touches private API.
Five touch points; `loader_states` reads Lightning's checkpoint format, not an attribute."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import WandbLogger
from torch.utils.data import DataLoader


def request_sigterm_stop(trainer: pl.Trainer) -> None:
    """Stop at the end of this batch as on SIGTERM (then `on_exception` sees SIGTERMException on every rank).

    Lightning has no public request for it: `should_stop` finishes the epoch (epoch-end hooks and saves) instead of
    stopping mid-epoch, and raising SIGTERM runs Lightning's handler, which broadcasts from one rank only."""
    trainer._signal_connector.received_sigterm = True


def saves_on_train_epoch_end(callback: ModelCheckpoint, trainer: pl.Trainer) -> bool:
    """Whether `callback` saves at train-epoch end (else after validation): Lightning's own rule, which depends on
    private trainer settings (time-based validation) and has no public accessor."""
    return bool(callback._should_save_on_train_epoch_end(trainer))


def wandb_init_kwargs(logger: WandbLogger) -> dict[str, Any]:
    """The dict Lightning passes to `wandb.init` (mutable; read at the first `experiment` access): Lightning offers
    no public way to change `settings` or `mode` after construction, nor to leave out `anonymous=None`."""
    init: dict[str, Any] = logger._wandb_init
    return init


def loader_states(checkpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The training DataLoaders' `state_dict()`s a checkpoint holds: Lightning saves them in its fit loop's state and
    loads them only while it first sets up the training data, which `estimated_stepping_batches` does before the
    checkpoint's loops are restored (so Lightning drops them); the key layout is Lightning's checkpoint format."""
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
    return list(fit_loop.get("state_dict", {}).get("combined_loader", []))


class IndexSamplerDataLoader(DataLoader):
    """A DataLoader whose index sampler (the batch sampler, or the sampler without automatic batching) passes through
    `wrap_index_sampler` each time an iterator starts: torch reads the private `_index_sampler` property there, also
    when persistent workers restart an epoch, and has no public hook to skip indices without reading rows."""

    def wrap_index_sampler(self, sampler: Any) -> Any:
        return sampler

    @property
    def _index_sampler(self) -> Any:
        return self.wrap_index_sampler(super()._index_sampler)


class SingleMergeCLI(LightningCLI):
    """LightningCLI without its own merge of a checkpoint's hyper-parameters (`_parse_ckpt_path`): it would merge them
    a second time, over the user's values and before any check of the classes they name; textcls's run_config merges
    them once, checked, under the user's. Lightning 2.6 offers no public switch for it."""

    def _parse_ckpt_path(self) -> None:
        return None
