"""What the convolutional families share: the input layouts they take and where they stride.

(L,) signals go in as one channel, (C, L) signals as C channels, both through 1-d layers;
(C, H, W) images through 2-d layers. Strides are chosen from the input's smallest side, so
a family downsamples large inputs and leaves small ones (8x8 digits) at a useful size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgekd.errors import UserError
from edgekd.models.registry import ArchSpec, Standardize

SHAPES = "(L,), (C, L) or (C, H, W)"


@dataclass(frozen=True)
class Layout:
    conv: type[nn.Module]       # nn.Conv1d | nn.Conv2d
    norm: type[nn.Module]       # nn.BatchNorm1d | nn.BatchNorm2d
    maxpool: type[nn.Module]    # nn.MaxPool1d | nn.MaxPool2d
    channels: int               # input channels
    side: int                   # the smallest spatial side
    unsqueeze: bool             # (N, L) inputs gain their channel axis in forward


def layout(family: str, input_shape: tuple[int, ...]) -> Layout:
    shape = tuple(input_shape)
    if len(shape) == 1:
        return Layout(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, 1, shape[0], True)
    if len(shape) == 2:
        return Layout(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, shape[0], shape[1], False)
    if len(shape) == 3:
        return Layout(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, shape[0], min(shape[1:]), False)
    raise UserError(f"{family} takes inputs of shape {SHAPES}, not {shape}")


def stride(side: int, at_least: int) -> tuple[int, int]:
    """(stride, side after it): 2 when the side is at least `at_least`, else 1. A stride-2
    layer with kernel k and padding k // 2 gives ceil(side / 2), never less than 1."""
    return (2, -(-side // 2)) if side >= at_least else (1, side)


def pool_head(head: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    return head(h.flatten(2).mean(-1))  # (N, C, *spatial) -> global average pool (N, C) -> (N, classes)


class Backbone(nn.Module):
    """standardize -> (channel axis for (L,) signals) -> features -> global average pool ->
    linear head; each convolutional family builds these four parts."""

    standardize: nn.Module
    unsqueeze: bool
    features: nn.Module
    head: nn.Linear

    def begin(self, family: str, spec: ArchSpec) -> Layout:
        """The input end every family shares: the standardization baked into the graph and the
        channel axis of (L,) signals. Returns the layout the family builds its layers from."""
        ops = layout(family, spec.input_shape)
        self.unsqueeze = ops.unsqueeze
        self.standardize = Standardize(spec.mean, spec.std)
        return ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        if self.unsqueeze:
            x = x.unsqueeze(1)                 # (N, L) -> (N, 1, L)
        return pool_head(self.head, self.features(x))
