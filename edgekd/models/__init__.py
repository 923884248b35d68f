"""Architecture families behind one registry; every model's forward(x) returns logits only."""

from edgekd.models import cnn, dscnn, mlp, mobilenetv2, resnet  # noqa: F401  (registers the built-in families)
from edgekd.models.io import load_model, save_model
from edgekd.models.registry import ArchSpec, build, families, register
from edgekd.models.stats import count_macs, count_params

register_family = register  # what a --plugin file imports to add a family: @register_family("tiny")

__all__ = ["ArchSpec", "build", "families", "register", "register_family", "load_model", "save_model",
           "count_macs", "count_params"]
