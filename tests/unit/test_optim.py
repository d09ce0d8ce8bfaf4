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
    # RMSprop has no fused kernel: falls back to the plain implementation instead of failing.
    assert isinstance(build_optimizer(torch.optim.RMSprop, params, torch.device("cpu")), torch.optim.RMSprop)


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
