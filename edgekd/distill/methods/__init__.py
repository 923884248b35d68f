"""The registry of distillation methods. Each method lives in its own module and registers
itself; nothing outside this package compares method names."""

from edgekd.distill.methods import (  # noqa: F401  (registers the built-ins)
    attention,
    born_again,
    dml,
    fitnet,
    kd,
    mse_logits,
    rkd,
)
from edgekd.distill.methods.base import (
    Batch,
    Method,
    create,
    flag_owner,
    markdown_table,
    method_table,
    names,
    register,
)

__all__ = ["Batch", "Method", "create", "flag_owner", "markdown_table", "method_table", "names", "register"]
