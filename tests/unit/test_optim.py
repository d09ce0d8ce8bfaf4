import itertools

import pytest
import torch
from torch import nn

from textcls.models import MLP
from textcls.optim import WarmupCosine, build_optimizer, keyword_unset, parameter_groups


def test_no_weight_decay_on_biases_and_embeddings_by_default():
    model = MLP(vocab_size=50, num_classes=3, hidden_dims=[16], embedding_dim=8)
    decay, no_decay = parameter_groups(model)
    assert no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert any(p is model.embedding.weight for p in no_decay["params"])
    assert not any(p is model.embedding.weight for p in decay["params"])
    with_embeddings = parameter_groups(model, decay_embeddings=True)[0]["params"]
    assert any(p is model.embedding.weight for p in with_embeddings)


def test_fused_kernel_is_used_unless_the_user_set_fused():
    from functools import partial

    params = [nn.Parameter(torch.zeros(4, 4))]
    assert build_optimizer(partial(torch.optim.Adam, lr=1e-3, fused=None), params, torch.device("cpu")).defaults[
        "fused"
    ]
    chosen = build_optimizer(partial(torch.optim.Adam, lr=1e-3, fused=False), params, torch.device("cpu"))
    assert not chosen.defaults["fused"]
    # RMSprop has no fused kernel: torch's default kernel instead of failing.
    rmsprop = build_optimizer(torch.optim.RMSprop, params, torch.device("cpu"))
    assert isinstance(rmsprop, torch.optim.RMSprop) and not rmsprop.defaults["foreach"]


def test_foreach_kernel_on_gpus_unless_fused_or_the_user_set_foreach():
    from functools import partial

    import schedulefree

    params = [nn.Parameter(torch.zeros(4, 4))]
    # Optimizers are built, not stepped, so a CUDA device object tests the choice on this CPU-only machine.
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for cls in (torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adafactor):
        assert build_optimizer(partial(cls, lr=1e-3, foreach=None), params, gpu).defaults["foreach"]
        assert not build_optimizer(partial(cls, lr=1e-3, foreach=False), params, gpu).defaults["foreach"]
        assert not build_optimizer(partial(cls, lr=1e-3, foreach=None), params, cpu).defaults["foreach"]
        assert build_optimizer(partial(cls, lr=1e-3, foreach=True), params, cpu).defaults["foreach"]
    # Schedule-Free's config inherits Adam's `foreach: null` across the class_path switch: foreach again on a GPU.
    free = build_optimizer(partial(schedulefree.AdamWScheduleFree, lr=1e-3, foreach=None), params, gpu)
    assert free.defaults["foreach"] is True
    # fused opted out: the next fastest; fused asked for: kept, and no foreach beside it (torch refuses both)
    adam = build_optimizer(partial(torch.optim.Adam, lr=1e-3, fused=False, foreach=None), params, gpu)
    assert adam.defaults["foreach"] and not adam.defaults["fused"]
    adam = build_optimizer(partial(torch.optim.Adam, lr=1e-3, fused=True, foreach=None), params, cpu)
    assert adam.defaults["fused"] and not adam.defaults["foreach"]


def test_optimizer_class_reads_jsonargparse_partials():
    from functools import partial

    import schedulefree

    from textcls.optim import optimizer_class

    assert optimizer_class(torch.optim.Adam) is torch.optim.Adam
    assert optimizer_class(partial(torch.optim.SGD, lr=0.1)) is torch.optim.SGD
    wrapped = partial(lambda instantiator, cls, **kw: cls(**kw), object(), schedulefree.AdamWScheduleFree, lr=1.0)
    assert optimizer_class(wrapped) is schedulefree.AdamWScheduleFree
    assert optimizer_class(lambda params: torch.optim.SGD(params, lr=0.1)) is None  # unknown: the caller assumes any


def test_keyword_unset():
    from functools import partial

    assert keyword_unset(partial(WarmupCosine, total_steps=None), "total_steps")
    assert not keyword_unset(partial(WarmupCosine, total_steps=10), "total_steps")
    assert not keyword_unset(torch.optim.lr_scheduler.StepLR, "total_steps")


def test_warmup_then_cosine_to_min():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, total_steps=100, warmup_fraction=0.1, min_lr_ratio=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[5] < lrs[9]  # rising during warmup
    assert lrs[10] == pytest.approx(1.0)  # peak right after warmup
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # then never rising
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_warmup_cosine_needs_a_length():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosine(opt)


def _clipped_scaled_step(fused: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One 16-mixed step with a loss scaler and norm clipping at 1.0; the fused Adam unscales inside its step."""
    from pytorch_lightning.plugins.precision import MixedPrecision
    from pytorch_lightning.utilities import GradClipAlgorithmType

    from textcls.optim import clip_gradients

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=fused)
    plugin = MixedPrecision("16-mixed", device="cpu")
    assert plugin.scaler is not None
    plugin.scaler.scale(model(torch.randn(8, 4) * 100).pow(2).mean()).backward()
    if not fused:  # what Lightning's plugin does itself for an optimizer that does not unscale in its step
        plugin.scaler.unscale_(optimizer)
    clip_gradients(plugin, optimizer, 1.0, GradClipAlgorithmType.NORM)
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    plugin.scaler.step(optimizer)
    plugin.scaler.update()
    return norm, [p.detach().clone() for p in model.parameters()]


def test_fused_adam_clips_unscaled_gradients_under_a_loss_scaler():
    fused_norm, fused_params = _clipped_scaled_step(fused=True)
    plain_norm, plain_params = _clipped_scaled_step(fused=False)
    assert float(fused_norm) == pytest.approx(1.0, rel=1e-4)  # clipped after unscaling, not the scaled gradients
    assert float(plain_norm) == pytest.approx(1.0, rel=1e-4)
    for fused, plain in zip(fused_params, plain_params, strict=True):
        torch.testing.assert_close(fused, plain)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed-scaler"])
def test_trainer_steps_with_fused_adam_and_clipping_under_mixed_precision(precision: str):
    """Lightning's AMP plugin refuses to clip for fused optimizers; TextClassifier clips and keeps the kernel."""
    import pytorch_lightning as pl
    from pytorch_lightning.plugins.precision import MixedPrecision

    from textcls.module import TextClassifier

    class Batches(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": torch.tensor([2 + i % 3, 3, 4, 0]), "labels": torch.tensor(i % 2)}

    model = TextClassifier(MLP(vocab_size=8, num_classes=2, hidden_dims=[4], embedding_dim=4), label_names=["a", "b"])
    before = [p.detach().clone() for p in model.parameters()]
    kwargs: dict = {"precision": "bf16-mixed"}
    if precision == "16-mixed-scaler":  # fp16 autocast with a GradScaler, as 16-mixed on a GPU
        kwargs = {"plugins": [MixedPrecision("16-mixed", device="cpu")]}
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=2, gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader(Batches(), batch_size=2))
    assert trainer.global_step == 2
    assert trainer.optimizers[0].defaults["fused"]
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("on_resume", ["replan", "keep"])
def test_warmup_cosine_resumed_with_a_longer_run_replans_or_keeps(on_resume: str, caplog):
    def schedule(total: int) -> WarmupCosine:
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        return WarmupCosine(optimizer, total_steps=total, warmup_steps=2, min_lr_ratio=0.1, on_resume=on_resume)

    short = schedule(10)
    for _ in range(10):
        short.optimizer.step()
        short.step()
    assert short.get_last_lr()[0] == pytest.approx(0.1)  # the end of the 10-step plan: the floor
    longer = schedule(20)  # the resumed run plans 20 steps; Lightning then restores the optimizer, then the schedule
    longer.optimizer.load_state_dict(short.optimizer.state_dict())
    longer.load_state_dict(short.state_dict())
    lr = longer.optimizer.param_groups[0]["lr"]
    if on_resume == "replan":
        assert longer.total_steps == 20
        assert lr == pytest.approx(longer.factor(10)) and lr > 0.5  # half-way down the new cosine, not the floor
    else:
        assert longer.total_steps == 10 and lr == pytest.approx(0.1)
    longer.optimizer.step()
    longer.step()
    expected = schedule(20).factor(11) if on_resume == "replan" else 0.1
    assert longer.get_last_lr()[0] == pytest.approx(expected)
    said = [r.getMessage() for r in caplog.records if "WarmupCosine: resumed at step 10" in r.getMessage()]
    assert len(said) == 1 and ("re-planned over 20" in said[0]) == (on_resume == "replan")
