"""ResNet (He et al. 2016) with basic blocks: stem -> `depth` blocks in up to 4 stages -> pool -> linear.

A block is two 3x3 convs with batch norm, added to an identity shortcut (a strided 1x1
projection where stride or channels change). Inputs of side 64 or more get the ImageNet
stem (7x7 stride 2 + 3x3 max pool, /4); smaller ones a 3x3 stride-1 stem, as CIFAR ResNets.
Stage s has width * 2^s channels, and its first block strides 2 while the side is at least 8.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.models.layout import Backbone, Layout, stride
from edgekd.models.registry import ArchSpec, register

STAGES = 4


class BasicBlock(nn.Module):
    def __init__(self, ops: Layout, cin: int, cout: int, step: int):
        super().__init__()
        self.body = nn.Sequential(
            ops.conv(cin, cout, 3, step, 1, bias=False), ops.norm(cout), nn.ReLU(),  # (N, cout, *s/step)
            ops.conv(cout, cout, 3, 1, 1, bias=False), ops.norm(cout))
        self.shortcut = nn.Identity() if step == 1 and cin == cout else \
            nn.Sequential(ops.conv(cin, cout, 1, step, bias=False), ops.norm(cout))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


@register("resnet")
class ResNet(Backbone):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        ops = self.begin("resnet", spec)
        w, side = spec.width, ops.side
        if side >= 64:  # (N, C, H, W) -> (N, w, H/4, W/4)
            stem = [ops.conv(ops.channels, w, 7, 2, 3, bias=False), ops.norm(w), nn.ReLU(), ops.maxpool(3, 2, 1)]
            side = -(-side // 4)
        else:           # (N, C, H, W) -> (N, w, H, W)
            stem = [ops.conv(ops.channels, w, 3, 1, 1, bias=False), ops.norm(w), nn.ReLU()]
        layers, cin = stem, w
        stages = min(spec.depth, STAGES)
        for i in range(spec.depth):
            stage = i * stages // spec.depth
            first = stage > 0 and stage != (i - 1) * stages // spec.depth
            step, side = stride(side, 8) if first else (1, side)
            layers.append(BasicBlock(ops, cin, w * 2 ** stage, step))
            cin = w * 2 ** stage
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, spec.classes)

