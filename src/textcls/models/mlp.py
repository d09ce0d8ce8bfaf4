"""fastText-style classifier: pooled (uni- and optionally hashed bi-gram) embeddings followed by an MLP."""

from collections.abc import Sequence

import torch
from torch import nn

from textcls.models.pooling import check_shared_args, masked_max, masked_mean

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
_POOLINGS = ("mean", "max")
# A large prime multiplier spreads (a, b) pairs over the buckets; it is part of the model's contract
# (changing it silently invalidates trained bigram tables), so it is a fixed constant, not an argument.
_BIGRAM_PRIME = 1000003


class MLP(nn.Module):
    """Bag-of-embeddings classifier in the style of fastText, optionally with hashed word bigrams.

    Args:
        vocab_size: Number of rows in the token embedding table (filled in from the data).
        num_classes: Number of output classes (filled in from the data).
        pad_id: Token id used for padding; those positions are ignored by pooling.
        embedding_dim: Size of each token (and bigram) embedding vector.
        hidden_dims: Sizes of the hidden layers after pooling; an empty list gives a linear classifier.
        activation: Non-linearity between hidden layers: relu, gelu or tanh.
        dropout: Dropout probability applied to the pooled vector and after every hidden layer.
        pooling: How token embeddings are combined over the sequence: mean or max (padding ignored).
        bigram_buckets: Number of hash buckets for word-bigram embeddings; 0 disables bigrams.
    """

    def __init__(
        self,
        vocab_size: int = 2,
        num_classes: int = 2,
        pad_id: int = 0,
        embedding_dim: int = 128,
        hidden_dims: Sequence[int] = (256,),
        activation: str = "relu",
        dropout: float = 0.3,
        pooling: str = "mean",
        bigram_buckets: int = 0,
    ) -> None:
        super().__init__()
        check_shared_args(vocab_size, num_classes, pad_id, embedding_dim, dropout)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {list(_POOLINGS)}, got {pooling!r}")
        if bigram_buckets < 0:
            raise ValueError(f"bigram_buckets must be 0 (disabled) or a positive integer, got {bigram_buckets}")
        hidden_dims = list(hidden_dims)
        if any(h <= 0 for h in hidden_dims):
            raise ValueError(f"hidden_dims must contain only positive integers, got {hidden_dims}")

        self.pad_id = pad_id
        self.pooling = pooling
        self.bigram_buckets = bigram_buckets
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.bigram_embedding = nn.Embedding(bigram_buckets, embedding_dim) if bigram_buckets > 0 else None

        layers: list[nn.Module] = [nn.Dropout(dropout)]
        in_dim = embedding_dim
        for out_dim in hidden_dims:
            layers += [nn.Linear(in_dim, out_dim), _ACTIVATIONS[activation](), nn.Dropout(dropout)]
            in_dim = out_dim
        layers.append(nn.Linear(in_dim, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Map right-padded token ids [batch, seq] to logits [batch, num_classes]."""
        mask = input_ids != self.pad_id
        embedded = self.embedding(input_ids)
        if self.bigram_embedding is not None:
            left, right = input_ids[:, :-1], input_ids[:, 1:]
            bigram_ids = (left * _BIGRAM_PRIME + right) % self.bigram_buckets
            # bigrams are pooled as extra "tokens" alongside the unigrams, so one mean covers both
            embedded = torch.cat([embedded, self.bigram_embedding(bigram_ids)], dim=1)
            mask = torch.cat([mask, mask[:, :-1] & mask[:, 1:]], dim=1)
        pool = masked_mean if self.pooling == "mean" else masked_max
        return self.classifier(pool(embedded, mask))
