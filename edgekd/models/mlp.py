"""Multi-layer perceptron: flatten, `depth` hidden layers of `width`, linear head."""

from __future__ import annotations

import math

from torch import nn

from edgekd.models.registry import ArchSpec, Standardize, register


@register("mlp")
def build_mlp(spec: ArchSpec) -> nn.Module:
    layers: list[nn.Module] = [Standardize(spec.mean, spec.std), nn.Flatten()]
    fan_in = math.prod(spec.input_shape)
    for _ in range(spec.depth):
        layers += [nn.Linear(fan_in, spec.width), nn.ReLU()]
        fan_in = spec.width
    layers.append(nn.Linear(fan_in, spec.classes))
    return nn.Sequential(*layers)
