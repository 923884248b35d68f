"""MobileNetV2 (Sandler et al. 2018): stem conv -> `depth` inverted residual blocks -> pool -> linear.

A block is 1x1 expand -> 3x3 depthwise -> 1x1 linear projection (no activation), each with
batch norm, ReLU6 after the first two, and a residual when it keeps stride and channels.
Options: `expansion`, the paper's t (hidden = t x input channels; the first block uses 1),
and `layout`:

- "edge" (default): the blocks fall into up to four stages of width, 2, 3 and 4 x width
  channels (rounded to multiples of 8, so widths below 8 build as 8); each stage's first
  block strides 2. The paper's last 1x1 conv to 1280 channels is left out: the head reads
  the last block's channels, so params ~ width^2 * depth, and a chain can shrink it smoothly.
- "paper": Table 2 of the paper, width = the stem's channels (32 is the paper's 1.0
  multiplier, every stage scaled by width / 32), the first `depth` of its 17 blocks, and the
  last 1x1 conv to 1280 (more above multiplier 1). mobilenetv2:32x17/layout=paper at
  224x224 and 1000 classes is the published model, 3,504,872 parameters.

Strides are taken while the side is at least 8 and the stem's while it is at least 32, so
224x224 images end at 7x7 as in the paper and 8x8 digits at 4x4.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import UserError
from edgekd.models.layout import Backbone, Layout, stride
from edgekd.models.registry import ArchSpec, register

STAGES = 4
# the paper's Table 2 after the stem: (channels at multiplier 1, blocks, stride of the first)
PAPER = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
PAPER_LAST = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor`, never below it and never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    def __init__(self, ops: Layout, cin: int, cout: int, step: int, expansion: int):
        super().__init__()
        hidden = make_divisible(cin * expansion) if expansion != 1 else cin
        layers: list[nn.Module] = []
        if expansion != 1:  # 1x1 expand: (N, cin, *s) -> (N, hidden, *s)
            layers += [ops.conv(cin, hidden, 1, bias=False), ops.norm(hidden), nn.ReLU6()]
        layers += [ops.conv(hidden, hidden, 3, step, 1, groups=hidden, bias=False),  # depthwise: (N, hidden, *s/step)
                   ops.norm(hidden), nn.ReLU6(),
                   ops.conv(hidden, cout, 1, bias=False), ops.norm(cout)]  # linear bottleneck: (N, cout, *s/step)
        self.block = nn.Sequential(*layers)
        self.residual = step == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def edge_blocks(spec: ArchSpec) -> list[tuple[int, int]]:
    """(output channels, stride when the side allows) of each block: four stages of 1-4 x width."""
    stages = min(spec.depth, STAGES)
    out = []
    for i in range(spec.depth):
        stage = i * stages // spec.depth
        first = i == 0 or stage != (i - 1) * stages // spec.depth
        out.append((make_divisible(spec.width * (stage + 1)), 2 if first else 1))
    return out


def paper_blocks(spec: ArchSpec) -> list[tuple[int, int]]:
    blocks = [(make_divisible(c * spec.width / 32), s if i == 0 else 1) for c, n, s in PAPER for i in range(n)]
    if spec.depth > len(blocks):
        raise UserError(f"{spec.label()}: the paper's layout has {len(blocks)} blocks; depth can be 1 to "
                        f"{len(blocks)}")
    return blocks[:spec.depth]


LAYOUTS = {"edge": edge_blocks, "paper": paper_blocks}


@register("mobilenetv2", options={"expansion": 6, "layout": "edge"})
class MobileNetV2(Backbone):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        ops = self.begin("mobilenetv2", spec)
        layout, expansion = spec.option("layout"), spec.option("expansion")
        if layout not in LAYOUTS:
            raise UserError(f"mobilenetv2 layout {layout!r} does not exist; known: {', '.join(LAYOUTS)}")
        if not 1 <= expansion <= 16:
            raise UserError(f"mobilenetv2 expansion {expansion} is out of range; the paper uses 6 (1 to 16)")
        cin = make_divisible(spec.width)
        step, side = stride(ops.side, 32)
        layers: list[nn.Module] = [ops.conv(ops.channels, cin, 3, step, 1, bias=False), ops.norm(cin), nn.ReLU6()]
        for i, (cout, step) in enumerate(LAYOUTS[layout](spec)):
            step, side = stride(side, 8) if step == 2 else (1, side)
            layers.append(InvertedResidual(ops, cin, cout, step, expansion if i else 1))
            cin = cout
        if layout == "paper":  # 1x1 conv to PAPER_LAST channels before the pool, scaled only up
            last = make_divisible(PAPER_LAST * max(1.0, spec.width / 32))
            layers += [ops.conv(cin, last, 1, bias=False), ops.norm(last), nn.ReLU6()]
            cin = last
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, spec.classes)

