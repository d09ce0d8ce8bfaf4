"""Kim (2014) convolutional sentence classifier with padding-aware max-over-time pooling."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from textcls.models.pooling import check_init_std, check_shared_args, init_embedding


class TextCNN(nn.Module):
    """Parallel 1-D convolutions of several widths over word embeddings, max-pooled over time (Kim, 2014).

    Args:
        vocab_size: Number of rows in the token embedding table (filled in from the data).
        num_classes: Number of output classes (filled in from the data).
        pad_id: Token id used for padding; windows that start in the padding are ignored by pooling.
        embedding_dim: Size of each token embedding vector.
        kernel_sizes: Convolution widths in tokens, one bank of filters per width.
        num_filters: Number of filters per width; the pooled feature vector has len(kernel_sizes) * num_filters entries.
        dropout: Dropout probability on the pooled features before the output layer.
        embedding_dropout: Dropout probability on the token embeddings before the convolutions.
        embedding_init_std: Standard deviation of the embedding table's random initialisation (torch's default is 1;
            Kim drew unknown words uniformly in [-0.25, 0.25], a std of 0.14).
        max_norm: Kim's constraint: during training, each class's output weight vector is rescaled to this L2 norm
            whenever an update takes it beyond (Kim used 3); unset leaves the output layer unconstrained.
    """

    def __init__(
        self,
        vocab_size: int = 2,
        num_classes: int = 2,
        pad_id: int = 0,
        embedding_dim: int = 128,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.5,
        embedding_dropout: float = 0.0,
        embedding_init_std: float = 1.0,
        max_norm: float | None = None,
    ) -> None:
        super().__init__()
        check_shared_args(vocab_size, num_classes, pad_id, embedding_dim, dropout)
        kernel_sizes = list(kernel_sizes)
        if not kernel_sizes or any(k < 1 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be a non-empty list of positive integers, got {kernel_sizes}")
        if num_filters < 1:
            raise ValueError(f"num_filters must be a positive integer, got {num_filters}")
        if not 0.0 <= embedding_dropout < 1.0:
            raise ValueError(f"embedding_dropout must be in [0, 1), got {embedding_dropout}")
        check_init_std(embedding_init_std)
        if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be a positive number or unset, got {max_norm}")

        self.pad_id = pad_id
        self.max_norm = max_norm
        self.kernel_sizes = kernel_sizes
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        if embedding_init_std != 1.0:  # nn.Embedding already drew N(0, 1); the default draws nothing more
            init_embedding(self.embedding, embedding_init_std)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(len(kernel_sizes) * num_filters, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Map right-padded token ids [batch, seq] to logits [batch, num_classes]."""
        shortfall = max(self.kernel_sizes) - input_ids.size(1)
        if shortfall > 0:
            # every width needs at least one window, even for a one-token batch
            input_ids = F.pad(input_ids, (0, shortfall), value=self.pad_id)
        lengths = (input_ids != self.pad_id).sum(dim=1, keepdim=True)  # [batch, 1]
        # Conv1d wants channels first: [batch, dim, seq]
        embedded = self.embedding_dropout(self.embedding(input_ids)).transpose(1, 2)

        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            features = torch.relu(conv(embedded))  # [batch, filters, seq - k + 1]
            positions = torch.arange(features.size(2), device=features.device)
            # a window is real text iff it starts at or before the last full window; rows shorter than k keep
            # window 0, so the result never depends on how far the batch was padded
            valid = positions.unsqueeze(0) <= (lengths - k).clamp(min=0)  # [batch, positions]
            features = features.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(features.max(dim=2).values)
        if self.max_norm is not None and self.training:
            self._project_output()
        return self.output(self.dropout(torch.cat(pooled, dim=1)))

    def train(self, mode: bool = True) -> "TextCNN":
        if not mode and self.max_norm is not None and self.training:
            self._project_output()  # the last update of a training phase, before it is evaluated or saved
        return super().train(mode)

    @torch.no_grad()
    def _project_output(self) -> None:
        # Kim projects after every update. Projecting before each training forward and when training stops gives the
        # same weights to every forward pass and every checkpoint, without optimizer hooks in the model. A constrained
        # model's rows already lie within the bound, so evaluating or exporting it never changes its weights.
        if self.max_norm is not None:
            self.output.weight.copy_(torch.renorm(self.output.weight, p=2, dim=0, maxnorm=self.max_norm))
