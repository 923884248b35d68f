"""Convolutional net for 1-D signals (N, L) and images (N, C, H, W).

stem conv -> (depth - 1) conv blocks, the first two with stride 2 -> global average
pool -> linear head. Global pooling keeps the parameter count independent of the input
length, so shrinking `width` shrinks the whole model (params ~ width^2 * depth).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import UserError
from edgekd.models.registry import ArchSpec, Standardize, register


class ConvNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        if len(spec.input_shape) == 1:
            conv, norm, channels, stem_kernel = nn.Conv1d, nn.BatchNorm1d, 1, 5
        elif len(spec.input_shape) == 3:
            conv, norm, channels, stem_kernel = nn.Conv2d, nn.BatchNorm2d, spec.input_shape[0], 3
        else:
            hint = "; grey images go in as (N, 1, H, W): x[:, None]" if len(spec.input_shape) == 2 else ""
            raise UserError(f"cnn takes inputs of shape (L,) or (C, H, W), not {tuple(spec.input_shape)}{hint}")
        self.unsqueeze = len(spec.input_shape) == 1
        self.standardize = Standardize(spec.mean, spec.std)
        w = spec.width
        blocks = [conv(channels, w, stem_kernel, padding=stem_kernel // 2), norm(w), nn.ReLU()]
        for i in range(spec.depth - 1):
            blocks += [conv(w, w, 3, padding=1, stride=2 if i < 2 else 1), norm(w), nn.ReLU()]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(w, spec.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        if self.unsqueeze:
            x = x.unsqueeze(1)                    # (N, L) -> (N, 1, L)
        h = self.features(x)                      # (N, W, *spatial)
        return self.head(h.flatten(2).mean(-1))   # global average pool -> (N, classes)


@register("cnn")
def build_cnn(spec: ArchSpec) -> nn.Module:
    return ConvNet(spec)
