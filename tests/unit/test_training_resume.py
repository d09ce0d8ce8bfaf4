"""The pieces of crash-proof training, one at a time: atomic checkpoint files, finding the newest complete `last`,
RNG state in a weights_only checkpoint, a DataLoader that resumes mid-epoch, the compile option."""

from __future__ import annotations

import io
import os
import random
import time

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import textcls.checkpointing as checkpointing
import textcls.speed as speed
from textcls.checkpointing import AtomicCheckpointIO
from textcls.data.resumable import ResumableDataLoader, distributed_eval_sampler
from textcls.fault_tolerance import TrainingRNG
from textcls.models import TextCNN
from textcls.module import TextClassifier
from textcls.resume import newest_last_checkpoint


def test_a_crash_while_writing_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io_plugin = AtomicCheckpointIO()
    io_plugin.save_checkpoint({"step": 1}, path)
    before = path.read_bytes()

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process dies in the middle of torch.save

    monkeypatch.setattr(checkpointing.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io_plugin.save_checkpoint({"step": 2}, path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temporary file left behind
    monkeypatch.undo()
    io_plugin.save_checkpoint({"step": 3}, path)
    assert torch.load(path, weights_only=True) == {"step": 3}


def test_newest_complete_last_checkpoint_skips_a_truncated_one(tmp_path):
    good = tmp_path / "textcnn" / "20260101-000000" / "checkpoints" / "last.ckpt"
    bad = tmp_path / "textcnn" / "20260101-000001" / "checkpoints" / "last.ckpt"
    other = tmp_path / "mlp" / "20260101-000002" / "checkpoints" / "last.ckpt"
    for path in (good, bad, other):
        path.parent.mkdir(parents=True)
    torch.save({"step": 1}, good)
    buffer = io.BytesIO()
    torch.save({"step": 2, "w": torch.zeros(1000)}, buffer)
    bad.write_bytes(buffer.getvalue()[:500])
    torch.save({"step": 3}, other)
    now = time.time()
    os.utime(good, (now - 10, now - 10))
    assert newest_last_checkpoint(tmp_path, "textcnn") == good
    assert newest_last_checkpoint(tmp_path, "nothing") is None


def test_newest_last_checkpoint_takes_a_complete_deepspeed_directory(tmp_path):
    """DeepSpeed (CUDA only, so not run here) saves `last.ckpt` as a directory: <tag>/*model_states.pt first, then a
    `latest` file naming the tag. This layout is written by hand, as DeepSpeed writes it."""
    older = tmp_path / "textcnn" / "20260101-000000" / "checkpoints" / "last.ckpt"
    complete = tmp_path / "textcnn" / "20260101-000001" / "checkpoints" / "last.ckpt"
    half_written = tmp_path / "textcnn" / "20260101-000002" / "checkpoints" / "last.ckpt"
    older.parent.mkdir(parents=True)
    torch.save({"step": 1}, older)
    for directory in (complete, half_written):
        (directory / "checkpoint").mkdir(parents=True)
        torch.save({"step": 2}, directory / "checkpoint" / "mp_rank_00_model_states.pt")
    (complete / "latest").write_text("checkpoint")  # the half-written one never got its `latest` file
    now = time.time()
    for age, path in ((30, older), (20, complete), (10, half_written)):
        os.utime(path, (now - age, now - age))
    assert newest_last_checkpoint(tmp_path, "textcnn") == complete


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    callback = TrainingRNG()
    state = callback.state_dict()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.save({"callbacks": {"TrainingRNG": state}}, tmp_path / "c.ckpt")

    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restored = TrainingRNG()
    restored.load_state_dict(torch.load(tmp_path / "c.ckpt", weights_only=True)["callbacks"]["TrainingRNG"])
    restored.on_train_batch_start(None, None, None, 0)  # torch's stream is put back before the next batch
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_training_rng_stream_ignores_draws_between_batches():
    callback = TrainingRNG()
    torch.manual_seed(0)
    callback.on_train_batch_end(None, None, None, None, 0)
    expected = torch.rand(2)
    torch.rand(5)  # e.g. a DataLoader drawing its base seed for validation
    callback.on_train_batch_start(None, None, None, 1)
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_continues_the_epoch_after_the_consumed_batches(num_workers):
    dataset = TensorDataset(torch.arange(20))

    def loader():
        return ResumableDataLoader(dataset, batch_size=3, num_workers=num_workers, persistent_workers=num_workers > 0)

    first = loader()
    iterator = iter(first)
    seen = [next(iterator)[0].tolist() for _ in range(3)]
    state = first.state_dict()
    assert state == {"batches": 3}

    second = loader()
    second.load_state_dict(state)
    rest = [batch[0].tolist() for batch in second]
    assert seen + rest == [batch[0].tolist() for batch in loader()]
    assert len(second) == 7 and second.state_dict() == {"batches": 7}
    assert len(list(second)) == 7  # the skip applies once; the next epoch is whole


def test_eval_sampler_is_sequential_without_distributed():
    assert distributed_eval_sampler(TensorDataset(torch.arange(5))) is None


@pytest.mark.slow  # importing torch's compiler stack takes seconds
def test_compile_option_compiles_the_network_in_place_and_keeps_checkpoint_keys():
    network = TextCNN(vocab_size=50, num_classes=2, pad_id=0, num_filters=4, embedding_dim=8)
    module = TextClassifier(network, label_names=["a", "b"], compile=True)
    keys = set(module.state_dict())
    module.configure_model()
    assert module.model._compiled_call_impl is not None
    assert set(module.state_dict()) == keys


def test_nonfinite_loss_option_is_checked():
    network = TextCNN(vocab_size=50, num_classes=2, pad_id=0, num_filters=4, embedding_dim=8)
    with pytest.raises(ValueError, match="nonfinite_loss"):
        TextClassifier(network, label_names=["a", "b"], nonfinite_loss="ignore")


def test_idle_batch_hooks_are_skipped_and_implemented_ones_still_run():
    import pytorch_lightning as pl
    from pytorch_lightning.trainer import call

    calls = []

    class Counting(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            calls.append(batch_idx)

    class OnInstance(pl.Callback):
        pass

    counting, idle, on_instance = Counting(), pl.Callback(), OnInstance()
    on_instance.on_before_backward = lambda trainer, module, loss: calls.append("instance")
    trainer = pl.Trainer(
        callbacks=[counting, idle, on_instance], logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    speed.skip_idle_batch_hooks(trainer.callbacks)
    assert idle.on_train_batch_end is None and callable(counting.on_train_batch_start)  # a user's keeps every hook
    assert callable(counting.on_train_batch_end) and callable(on_instance.on_before_backward)
    call._call_callback_hooks(trainer, "on_train_batch_end", None, None, 7)
    call._call_callback_hooks(trainer, "on_train_batch_start", None, 7)  # all idle: nothing called, no error
    call._call_callback_hooks(trainer, "on_before_backward", torch.tensor(1.0))
    assert calls == [7, "instance"]
