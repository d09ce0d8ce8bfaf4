"""Helpers shared by the models: pooling over the sequence axis that ignores padding, and argument checks."""

import math

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


def masked_sqrt_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` [batch, seq, dim] over the positions where ``mask`` is True, divided by the square root of their
    number: between mean (every text weighs the same) and sum (long texts dominate). No valid position gives 0."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    total = (x * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0).sqrt()


def dedupe_mask(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """True at the first occurrence in its row of each id of ``ids`` [batch, seq] among the positions where ``mask``
    is True (False at repeats and at masked positions), so pooling counts every distinct id once.

    Ids must be below 2**40 (vocabularies and hash tables are far smaller)."""
    seq = ids.shape[1]
    # One key per position, id * seq + position: all keys differ, so any sort puts repeats of an id next to each other
    # with the first occurrence first. torch's stable sort would do the same, but has no ONNX export. Masked
    # positions get an id above every real one: they sort last and never equal a real id.
    masked_id = torch.full_like(ids, 1 << 40)
    keys = torch.where(mask, ids, masked_id) * seq + torch.arange(seq, device=ids.device)
    ordered, order = torch.sort(keys, dim=1)
    ordered_ids = torch.div(ordered, seq, rounding_mode="floor")
    first = torch.ones_like(mask)
    first[:, 1:] = ordered_ids[:, 1:] != ordered_ids[:, :-1]
    first = first & torch.gather(mask, 1, order)
    # scatter back from sorted order to the original positions
    return torch.zeros_like(mask).scatter(1, order, first)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Element-wise max of ``x`` [batch, seq, dim] over positions where ``mask`` [batch, seq] is True.

    A row with no valid position pools to the zero vector (not -inf).
    """
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    pooled = filled.max(dim=1).values
    has_any = mask.any(dim=1, keepdim=True)
    return torch.where(has_any, pooled, torch.zeros_like(pooled))


def init_embedding(table: torch.nn.Embedding, std: float) -> None:
    """Draw ``table``'s rows from N(0, std^2), keeping its padding row at zero."""
    with torch.no_grad():
        table.weight.normal_(0.0, std)
        if table.padding_idx is not None:
            table.weight[table.padding_idx].zero_()


def check_init_std(embedding_init_std: float) -> None:
    if not (math.isfinite(embedding_init_std) and embedding_init_std > 0):
        raise ValueError(f"embedding_init_std must be a positive number, got {embedding_init_std}")


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
