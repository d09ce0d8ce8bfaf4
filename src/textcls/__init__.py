"""textcls: text classification with PyTorch Lightning, MLP and TextCNN models and a configurable Adam."""

__version__ = "0.1.0"
