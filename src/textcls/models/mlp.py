"""fastText-style classifier: pooled (uni- and optionally hashed bi/tri-gram) embeddings followed by an MLP."""

import math
from collections.abc import Iterable, Sequence
from typing import Literal, get_args

import torch
from torch import nn

from textcls.models.pooling import (
    check_init_std,
    check_shared_args,
    dedupe_mask,
    init_embedding,
    masked_max,
    masked_mean,
    masked_sqrt_sum,
)

Activation = Literal["relu", "gelu", "tanh"]
Pooling = Literal["mean", "max", "sqrt"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
# (a, b) -> (a*P1 + b*P2) mod B and (a, b, c) -> (a*P3 + b*P4 + c*P5) mod B, each product reduced first so int64 never
# overflows; primes near 2**31 spread n-grams like a random hash for any B. Part of a trained table's meaning: a
# versioned constant that checkpoints record, not an argument.
_NGRAM_PRIMES = (2147483647, 1073741827, 2147483629, 1073741831, 2147483587)
NGRAM_HASH_VERSION = 2


class MLP(nn.Module):
    """Bag-of-embeddings classifier in the style of fastText, optionally with hashed word bigrams and trigrams.

    Args:
        vocab_size: Number of rows in the token embedding table (filled in from the data).
        num_classes: Number of output classes (filled in from the data).
        pad_id: Token id used for padding; those positions are ignored by pooling.
        embedding_dim: Size of each token (and n-gram) embedding vector.
        hidden_dims: Sizes of the hidden layers after pooling; an empty list gives a linear classifier.
        activation: Non-linearity between hidden layers: relu, gelu or tanh.
        dropout: Dropout probability applied to the pooled vector and after every hidden layer.
        pooling: How token embeddings are combined over the sequence, padding ignored: mean, max, or sqrt (the sum
            divided by the square root of the number of terms: long texts weigh more than with mean).
        ngram_buckets: Number of hash buckets of the one word n-gram embedding table (bigrams, and trigrams with
            ngram_order 3); 0 disables n-grams.
        ngram_order: Longest hashed word n-gram: 2 (bigrams) or 3 (bigrams and trigrams); needs ngram_buckets > 0.
        word_dropout: Training only: probability of leaving each token and n-gram out of the pool (0 disables).
        binary: Pool each distinct token / n-gram of a text once, however often it occurs (as in NBSVM's binarised
            features); mean and sqrt pooling then count distinct terms.
        embedding_init_std: Standard deviation of the embedding tables' random initialisation (torch's default is 1).
            Small values (fastText starts at about 1/embedding_dim) let words seen once or never in training add
            little noise, which matters on small data sets.
        nb_weighting: Scale each token's and n-gram's embedding by its Naive Bayes weight before pooling, as NBSVM
            (Wang & Manning, 2012) scales its binarised features: the log-count ratio |log p(f | pos) - log p(f | neg)|
            with add-`nb_alpha` smoothing, counted once per training text; with more than two classes, the largest
            such ratio between any two classes. Multi-label: a text counts for each of its labels (none for a text
            without a label), then the same largest ratio between any two labels. Terms that separate the classes weigh
            more from the first step, terms spread evenly (or seen once) weigh little. The weights are counted from the
            training data at the start of a fresh fit (`fit_nb_weights`, called by TextClassifier) and saved in the
            checkpoint.
        nb_alpha: Add-alpha smoothing of the counts behind nb_weighting (NBSVM uses 1).
        sparse: Embedding tables get sparse gradients: a step updates only the rows of the batch (much faster for
            large n-gram tables). Needs torch.optim.Adagrad or SGD with momentum 0 (the torch optimizers that update
            sparse and dense layers together), no weight decay on the embeddings and `trainer.gradient_clip_val: null`
            (torch cannot clip sparse gradients); other optimizers are refused with a message. Checkpoints are
            interchangeable with sparse false.
    """

    def __init__(
        self,
        vocab_size: int = 2,
        num_classes: int = 2,
        pad_id: int = 0,
        embedding_dim: int = 128,
        hidden_dims: Sequence[int] = (256,),
        activation: Activation = "relu",
        dropout: float = 0.3,
        pooling: Pooling = "mean",
        ngram_buckets: int = 0,
        ngram_order: Literal[2, 3] = 2,
        word_dropout: float = 0.0,
        binary: bool = False,
        embedding_init_std: float = 1.0,
        nb_weighting: bool = False,
        nb_alpha: float = 1.0,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        check_shared_args(vocab_size, num_classes, pad_id, embedding_dim, dropout)
        # The CLI refuses other values while parsing (Literal); these checks are for Python callers.
        if activation not in get_args(Activation):
            raise ValueError(f"activation must be one of {list(get_args(Activation))}, got {activation!r}")
        if pooling not in get_args(Pooling):
            raise ValueError(f"pooling must be one of {list(get_args(Pooling))}, got {pooling!r}")
        if ngram_buckets < 0:
            raise ValueError(f"ngram_buckets must be 0 (disabled) or a positive integer, got {ngram_buckets}")
        if ngram_order not in (2, 3):
            raise ValueError(f"ngram_order must be 2 (bigrams) or 3 (bigrams and trigrams), got {ngram_order}")
        if ngram_order == 3 and ngram_buckets == 0:
            raise ValueError("ngram_order 3 needs ngram_buckets > 0 (the n-gram hash table); got ngram_buckets 0")
        check_init_std(embedding_init_std)
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        if not (math.isfinite(nb_alpha) and nb_alpha > 0):
            raise ValueError(f"nb_alpha must be a positive number, got {nb_alpha}")
        hidden_dims = list(hidden_dims)
        if any(h <= 0 for h in hidden_dims):
            raise ValueError(f"hidden_dims must contain only positive integers, got {hidden_dims}")

        self.pad_id, self.num_classes = pad_id, num_classes
        self.pooling = pooling
        self.ngram_buckets = ngram_buckets
        self.ngram_order = ngram_order
        self.word_dropout = word_dropout
        self.binary = binary
        self.nb_weighting, self.nb_alpha = nb_weighting, nb_alpha
        self.nb_unigram: torch.Tensor | None
        self.nb_ngram: torch.Tensor | None
        # Persistent, so predict and export use the weights of training; ones (no scaling) until fit_nb_weights runs.
        # Registered only with nb_weighting, so that other checkpoints keep their keys.
        self.register_buffer("nb_unigram", torch.ones(vocab_size) if nb_weighting else None)
        self.register_buffer("nb_ngram", torch.ones(ngram_buckets) if nb_weighting and ngram_buckets else None)
        # Which optimizers take sparse gradients next to the dense classifier, and why the others are refused: see
        # textcls.optim.check_sparse_optimizer (a model does not import the training code).
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id, sparse=sparse)
        self.ngram_embedding = nn.Embedding(ngram_buckets, embedding_dim, sparse=sparse) if ngram_buckets > 0 else None
        if ngram_buckets > 0:
            # Recorded in the state dict: a checkpoint whose table was trained with another hash refuses to load
            # (see _refuse_other_hash) instead of silently looking its n-grams up in the wrong rows.
            self.register_buffer("ngram_hash_version", torch.tensor(NGRAM_HASH_VERSION))
            self.register_load_state_dict_pre_hook(_refuse_other_hash)
        for table in (self.embedding, self.ngram_embedding):
            if table is not None and embedding_init_std != 1.0:  # nn.Embedding already drew N(0, 1)
                init_embedding(table, embedding_init_std)

        layers: list[nn.Module] = [nn.Dropout(dropout)]
        in_dim = embedding_dim
        for out_dim in hidden_dims:
            layers += [nn.Linear(in_dim, out_dim), _ACTIVATIONS[activation](), nn.Dropout(dropout)]
            in_dim = out_dim
        layers.append(nn.Linear(in_dim, num_classes))
        self.classifier = nn.Sequential(*layers)

    def _ngrams(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hashed n-gram bucket ids [batch, n] and their validity mask (every word of the n-gram is real)."""
        buckets = self.ngram_buckets
        p1, p2, p3, p4, p5 = _NGRAM_PRIMES
        ids = [(input_ids[:, :-1] * p1 % buckets + input_ids[:, 1:] * p2 % buckets) % buckets]
        masks = [mask[:, :-1] & mask[:, 1:]]
        if self.ngram_order == 3:
            first, second, third = input_ids[:, :-2], input_ids[:, 1:-1], input_ids[:, 2:]
            ids.append((first * p3 % buckets + second * p4 % buckets + third * p5 % buckets) % buckets)
            masks.append(masks[0][:, :-1] & mask[:, 2:])
        return torch.cat(ids, dim=1), torch.cat(masks, dim=1)

    def _terms(self, input_ids: torch.Tensor, dedupe: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(ids, mask) of each row's unigrams and, with an n-gram table, of its hashed n-grams: True at real words
        only, and with `dedupe` at the first occurrence of each distinct id. forward pools these terms and
        fit_nb_weights counts them, so the weights are always those of the terms pooled."""
        real = input_ids != self.pad_id
        terms = [(input_ids, real)]
        if self.ngram_embedding is not None:
            terms.append(self._ngrams(input_ids, real))  # n-grams of real words, repeated or not
        if dedupe:
            terms = [(ids, mask & dedupe_mask(ids, mask)) for ids, mask in terms]
        return terms

    @torch.no_grad()
    def fit_nb_weights(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Set the nb_weighting weights from (token ids [batch, seq], labels [batch] or multi-hot [batch, classes])
        batches of the training data: how many texts of each class contain each token and n-gram, then the smoothed
        log-count ratios."""
        if self.nb_unigram is None:
            raise ValueError("fit_nb_weights needs an MLP built with nb_weighting true")
        tables = [torch.zeros(len(self.nb_unigram), self.num_classes, dtype=torch.float64)]
        if self.nb_ngram is not None:
            tables.append(torch.zeros(len(self.nb_ngram), self.num_classes, dtype=torch.float64))
        for input_ids, labels in batches:
            input_ids, labels = input_ids.cpu(), labels.cpu()
            # each term counted once per text, as NBSVM binarises, whether or not the model pools it once (binary)
            for table, (ids, once) in zip(tables, self._terms(input_ids, dedupe=True), strict=True):
                if labels.dim() == 2:  # multi-hot: the text's row of labels added to each of its terms
                    texts = torch.arange(len(ids)).unsqueeze(1).expand_as(ids)
                    table.index_add_(0, ids[once], labels[texts[once]].to(table.dtype))
                    continue
                rows = labels.unsqueeze(1).expand_as(ids)
                table.index_put_((ids[once], rows[once]), torch.ones((), dtype=table.dtype), accumulate=True)
        for table, weights in zip(tables, (self.nb_unigram, self.nb_ngram), strict=False):
            smoothed = table + self.nb_alpha
            log_p = (smoothed / smoothed.sum(dim=0, keepdim=True)).log()  # log p(term | class)
            assert weights is not None
            weights.copy_(log_p.max(dim=1).values - log_p.min(dim=1).values)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Map right-padded token ids [batch, seq] to logits [batch, num_classes]."""
        (ids, mask), *ngram_terms = self._terms(input_ids, dedupe=self.binary)
        embedded = self.embedding(ids)
        if self.nb_unigram is not None:
            embedded = embedded * self.nb_unigram[ids].unsqueeze(-1)
        if self.ngram_embedding is not None:
            [(ngram_ids, ngram_mask)] = ngram_terms
            ngrams = self.ngram_embedding(ngram_ids)
            if self.nb_ngram is not None:
                ngrams = ngrams * self.nb_ngram[ngram_ids].unsqueeze(-1)
            # n-grams are pooled as extra "tokens" alongside the unigrams, so one pool covers both
            embedded = torch.cat([embedded, ngrams], dim=1)
            mask = torch.cat([mask, ngram_mask], dim=1)
        if self.training and self.word_dropout > 0:
            mask = mask & (torch.rand(mask.shape, device=mask.device) >= self.word_dropout)
        if self.pooling == "mean":
            pooled = masked_mean(embedded, mask)
        elif self.pooling == "sqrt":
            pooled = masked_sqrt_sum(embedded, mask)
        else:
            pooled = masked_max(embedded, mask)
        return self.classifier(pooled)


def _refuse_other_hash(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """load_state_dict pre-hook: a state dict without this hash's version number has an n-gram table indexed by
    another hash."""
    found = state_dict.get(prefix + "ngram_hash_version")
    if found is None or int(found) != NGRAM_HASH_VERSION:
        version = "the first n-gram hash (no version recorded)" if found is None else f"n-gram hash {int(found)}"
        error_msgs = args[-1]
        assert isinstance(error_msgs, list)
        error_msgs.append(
            f"its n-gram table was trained with {version}, this textcls hashes n-grams with version "
            f"{NGRAM_HASH_VERSION}: retrain the model (the old hash put most bigrams into a few shared buckets)."
        )
