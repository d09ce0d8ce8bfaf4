"""Text classifiers as plain ``torch.nn.Module``s: ``forward(input_ids [batch, seq]) -> logits [batch, classes]``."""

from textcls.models.mlp import MLP
from textcls.models.textcnn import TextCNN

__all__ = ["MLP", "TextCNN"]
