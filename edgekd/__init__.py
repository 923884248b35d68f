"""edgekd: knowledge distillation for edge deployment."""

__version__ = "0.1.0"
