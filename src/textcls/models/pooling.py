"""Helpers shared by the models: pooling over the sequence axis that ignores padding, and argument checks."""

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` [batch, seq, dim] over positions where ``mask`` [batch, seq] is True.

    A row with no valid position pools to the zero vector (not NaN).
    """
    weights = mask.unsqueeze(-1).to(x.dtype)
    total = (x * weights).sum(dim=1)
    # clamp keeps an all-padding row at 0 / 1 = 0 instead of 0 / 0 = NaN
    count = weights.sum(dim=1).clamp(min=1.0)
    return total / count


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Element-wise max of ``x`` [batch, seq, dim] over positions where ``mask`` [batch, seq] is True.

    A row with no valid position pools to the zero vector (not -inf).
    """
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    pooled = filled.max(dim=1).values
    has_any = mask.any(dim=1, keepdim=True)
    return torch.where(has_any, pooled, torch.zeros_like(pooled))


def check_shared_args(vocab_size: int, num_classes: int, pad_id: int, embedding_dim: int, dropout: float) -> None:
    """Validate the arguments every model shares, with messages that name the argument."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    if not 0 <= pad_id < vocab_size:
        raise ValueError(f"pad_id must be in [0, vocab_size={vocab_size}), got {pad_id}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
