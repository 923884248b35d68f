"""ResNet (He et al. 2016) with basic blocks: stem -> `depth` blocks in up to 4 stages -> pool -> linear.

A block is two 3x3 convs with batch norm, added to an identity shortcut (a strided 1x1
projection where stride or channels change). Inputs of side 64 or more get the ImageNet
stem (7x7 stride 2 + 3x3 max pool, /4); smaller ones a 3x3 stride-1 stem, as CIFAR ResNets.
Stage s has width * 2^s channels, and its first block strides 2 while the side is at least 8.
Options: `block`, "basic" (two 3x3 convs) or "bottleneck" (1x1 down to width * 2^s, 3x3,
1x1 up to 4x that, as in ResNet-50), and `layout`, how the `depth` blocks split into the
four stages: "even" (default) or "paper", the split of the paper's Table 1 (depth 8: 2-2-2-2,
16: 3-4-6-3, 33: 3-4-23-3, 50: 3-8-36-3). resnet:64x8 is ResNet-18, resnet:64x16/layout=paper
ResNet-34 and resnet:64x16/block=bottleneck/layout=paper ResNet-50 (25,557,032 parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import UserError
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


class Bottleneck(nn.Module):
    expansion = 4  # output channels / inner channels

    def __init__(self, ops: Layout, cin: int, cout: int, step: int):
        super().__init__()
        mid = cout // Bottleneck.expansion
        self.body = nn.Sequential(
            ops.conv(cin, mid, 1, bias=False), ops.norm(mid), nn.ReLU(),             # (N, mid, *s)
            ops.conv(mid, mid, 3, step, 1, bias=False), ops.norm(mid), nn.ReLU(),    # (N, mid, *s/step)
            ops.conv(mid, cout, 1, bias=False), ops.norm(cout))                      # (N, cout, *s/step)
        self.shortcut = nn.Identity() if step == 1 and cin == cout else \
            nn.Sequential(ops.conv(cin, cout, 1, step, bias=False), ops.norm(cout))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


BLOCKS = {"basic": (BasicBlock, 1), "bottleneck": (Bottleneck, Bottleneck.expansion)}  # block, output channels x
PAPER_SPLITS = {8: (2, 2, 2, 2), 16: (3, 4, 6, 3), 33: (3, 4, 23, 3), 50: (3, 8, 36, 3)}


def stages(spec: ArchSpec) -> list[int]:
    """The stage of each of the `depth` blocks."""
    if spec.option("layout") == "paper":
        if spec.depth not in PAPER_SPLITS:
            raise UserError(f"{spec.label()}: the paper's layout has depth "
                            f"{', '.join(map(str, PAPER_SPLITS))} (ResNet-18/34, -101, -152 block counts)")
        return [s for s, n in enumerate(PAPER_SPLITS[spec.depth]) for _ in range(n)]
    if spec.option("layout") != "even":
        raise UserError(f"resnet layout {spec.option('layout')!r} does not exist; known: even, paper")
    count = min(spec.depth, STAGES)
    return [i * count // spec.depth for i in range(spec.depth)]


@register("resnet", options={"block": "basic", "layout": "even"})
class ResNet(Backbone):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        ops = self.begin("resnet", spec)
        if spec.option("block") not in BLOCKS:
            raise UserError(f"resnet block {spec.option('block')!r} does not exist; known: {', '.join(BLOCKS)}")
        block, widen = BLOCKS[spec.option("block")]
        w, side = spec.width, ops.side
        if side >= 64:  # (N, C, H, W) -> (N, w, H/4, W/4)
            stem = [ops.conv(ops.channels, w, 7, 2, 3, bias=False), ops.norm(w), nn.ReLU(), ops.maxpool(3, 2, 1)]
            side = -(-side // 4)
        else:           # (N, C, H, W) -> (N, w, H, W)
            stem = [ops.conv(ops.channels, w, 3, 1, 1, bias=False), ops.norm(w), nn.ReLU()]
        layers, cin = stem, w
        of = stages(spec)
        for i, stage in enumerate(of):
            first = stage > 0 and stage != of[i - 1]
            step, side = stride(side, 8) if first else (1, side)
            layers.append(block(ops, cin, w * 2 ** stage * widen, step))
            cin = w * 2 ** stage * widen
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, spec.classes)

