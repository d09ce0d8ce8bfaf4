"""Each private-API assumption of textcls.compat, checked against the installed Lightning / torch / wandb: a failure
here names the upstream change to port (see the function's docstring in src/textcls/compat.py)."""

from __future__ import annotations

import inspect
import itertools

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel, RandomDataset
from torch.utils.data import DataLoader, TensorDataset

from textcls import compat
from textcls.data.resumable import ResumableDataLoader


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


def test_sigterm_request_sets_the_flag_lightning_stops_on(tmp_path):
    trainer = _trainer(tmp_path)
    assert hasattr(trainer, "_signal_connector"), (
        "Lightning removed Trainer._signal_connector: port request_sigterm_stop"
    )
    compat.request_sigterm_stop(trainer)
    assert trainer.received_sigterm, "Trainer.received_sigterm no longer reads _signal_connector.received_sigterm"


def test_save_on_train_epoch_end_rule_is_still_a_method_of_the_trainer(tmp_path):
    method = getattr(ModelCheckpoint, "_should_save_on_train_epoch_end", None)
    assert callable(method), "Lightning removed ModelCheckpoint._should_save_on_train_epoch_end: port compat"
    assert list(inspect.signature(method).parameters) == ["self", "trainer"], "its signature changed: port compat"
    assert compat.saves_on_train_epoch_end(ModelCheckpoint(save_on_train_epoch_end=True), _trainer(tmp_path))
    assert not compat.saves_on_train_epoch_end(ModelCheckpoint(), _trainer(tmp_path, check_val_every_n_epoch=2))


def test_wandb_init_kwargs_is_the_dict_lightning_passes_to_wandb_init(tmp_path):
    pytest.importorskip("wandb")
    from pytorch_lightning.loggers import WandbLogger

    logger = WandbLogger(project="compat-check", save_dir=str(tmp_path), offline=True)
    init = compat.wandb_init_kwargs(logger)
    assert isinstance(init, dict), "WandbLogger._wandb_init is gone or not a dict: port wandb_init_kwargs"
    assert init["project"] == "compat-check" and init["dir"] == str(tmp_path), "its keys changed: port compat"
    init["mode"] = "offline"
    assert compat.wandb_init_kwargs(logger)["mode"] == "offline", "the dict is no longer the one kept: port compat"


def test_loader_states_reads_what_lightning_saves_for_a_stateful_loader(tmp_path):
    class Model(BoringModel):
        def train_dataloader(self):
            return ResumableDataLoader(RandomDataset(32, 8), batch_size=2)

    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0, enable_checkpointing=False)
    trainer.fit(Model())
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    assert compat.loader_states(checkpoint) == [{"batches": 3}], (
        "Lightning moved the DataLoader states out of loops/fit_loop/state_dict/combined_loader: port loader_states"
    )


def test_index_sampler_is_where_torch_iterators_read_their_indices():
    prop = inspect.getattr_static(DataLoader, "_index_sampler", None)
    assert isinstance(prop, property), "torch removed DataLoader._index_sampler: port IndexSamplerDataLoader"
    calls = []

    class SkipOne(compat.IndexSamplerDataLoader):
        def wrap_index_sampler(self, sampler):
            calls.append(sampler)
            return _Sliced(sampler)

    loader = SkipOne(TensorDataset(torch.arange(6)), batch_size=2)
    assert [batch[0].tolist() for batch in loader] == [[2, 3], [4, 5]], "torch no longer iterates _index_sampler"
    assert calls, "the wrapper was never asked for the index sampler"


class _Sliced:
    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        return itertools.islice(iter(self.sampler), 1, None)

    def __len__(self):
        return len(self.sampler)


def test_lightning_cli_still_merges_checkpoint_hyperparameters_through_parse_ckpt_path():
    from pytorch_lightning.cli import LightningCLI

    method = getattr(LightningCLI, "_parse_ckpt_path", None)
    assert callable(method), "LightningCLI._parse_ckpt_path is gone: port SingleMergeCLI (is the merge still there?)"
    assert "_parse_ckpt_path()" in inspect.getsource(LightningCLI), (
        "LightningCLI no longer calls _parse_ckpt_path: find where it merges checkpoint hparams and port SingleMergeCLI"
    )
    assert compat.SingleMergeCLI._parse_ckpt_path(object.__new__(compat.SingleMergeCLI)) is None
