"""The registry of distillation methods. Each method lives in its own module and registers
itself; nothing outside this package compares method names."""

from edgekd.distill.methods.base import Batch, Method, create, markdown_table, method_table, names, register
from edgekd.distill.methods import attention, born_again, dml, fitnet, kd, mse_logits, rkd  # noqa: F401  (registers the built-ins)

__all__ = ["Batch", "Method", "create", "markdown_table", "method_table", "names", "register"]
