"""Initialisers that need the training data: pretrained word vectors for the network's `embedding`, the MLP's
Naive Bayes weights and balanced class weights. The CLI runs `initialise_from_data` before a fresh fit; from Python,
call it before Trainer.fit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from textcls.embeddings import check_vectors_file, load_pretrained
from textcls.errors import UserError
from textcls.imbalance import balanced_weights, describe

if TYPE_CHECKING:
    from textcls.module import TextClassifier


def initialise_from_data(
    module: TextClassifier, datamodule: Any, *, resuming: bool = False, loggers: Iterable[Logger] = ()
) -> None:
    """Read `module.pretrained_embeddings` into the network's embedding and count the NB weights of an MLP with
    `nb_weighting`, from `datamodule` (its tokenizer and `labelled_train_batches`), and count `class_weights
    balanced` (its `label_counts`). Nothing when `resuming`: the checkpoint holds all three, and the vector file may
    be gone."""
    module.initialised_from_data = True
    if resuming:
        return
    if module.pretrained_embeddings:
        load_vectors(module, datamodule, str(module.pretrained_embeddings), loggers)
    elif module.freeze_embeddings:
        rank_zero_warn("--model.freeze_embeddings without --model.pretrained_embeddings: random vectors stay fixed")
    if getattr(module.model, "nb_weighting", False):
        fit_nb_weights(module, datamodule)
    if module.balanced_weights:
        fit_balanced_weights(module, datamodule)


def fit_balanced_weights(module: TextClassifier, datamodule: Any) -> None:
    """Set the module's loss weights from the training split's label counts (textcls.imbalance.balanced_weights)."""
    label_counts = getattr(datamodule, "label_counts", None)
    if label_counts is None:
        raise UserError("--model.class_weights balanced needs a DataModule with label_counts.")
    counts, rows = label_counts()
    assert module.class_weights is not None  # registered by TextClassifier for "balanced"
    weights = balanced_weights(counts, rows, module.multi_label)
    module.class_weights.copy_(weights)
    rank_zero_info(describe(weights, module.label_names, module.multi_label))


def fit_nb_weights(module: TextClassifier, datamodule: Any) -> None:
    """Count the training data for the network's Naive Bayes feature weights (textcls.models.MLP nb_weighting).
    Every DDP rank counts the whole training split, in file order, so the ranks agree without a collective."""
    batches = getattr(datamodule, "labelled_train_batches", None)
    if batches is None:
        raise UserError("--model.model.init_args.nb_weighting needs a DataModule with labelled_train_batches.")
    cast(Any, module.model).fit_nb_weights(batches())


def load_vectors(module: TextClassifier, datamodule: Any, path: str, loggers: Iterable[Logger] = ()) -> None:
    """Copy the vectors of `path` into the network's embedding, with progress, the coverage and its hyper-parameters."""
    tokenizer = getattr(datamodule, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "vocab"):
        raise UserError("--model.pretrained_embeddings needs a DataModule with a tokenizer vocabulary.")
    embedding = module.embedding_table()
    check_vectors_file(path, embedding.embedding_dim)  # the header's dimension, before the long read
    reported = [0]

    def progress(fraction: float) -> None:  # a line per tenth of a large file
        if int(fraction * 10) > reported[0]:
            reported[0] = int(fraction * 10)
            rank_zero_info(f"pretrained vectors: {fraction:.0%} of {path} read")

    coverage = load_pretrained(
        embedding,
        path,
        tokenizer.vocab,
        lowercase=bool(getattr(tokenizer, "lowercase", False)),
        skip_ids=[getattr(tokenizer, "unk_id", 1)],
        progress=progress,
    )
    rank_zero_info(coverage.message())
    if coverage.percent < 50:
        rank_zero_warn(f"only {coverage.percent:.1f} % of the vocabulary has a pretrained vector in {path}.")
    for logger in loggers:
        logger.log_hyperparams(
            {"pretrained_vectors_found": coverage.found, "pretrained_vectors_coverage": round(coverage.percent, 2)}
        )
