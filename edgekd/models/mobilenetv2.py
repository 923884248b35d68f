"""MobileNetV2 (Sandler et al. 2018): stem conv -> `depth` inverted residual blocks -> pool -> linear.

A block is 1x1 expand -> 3x3 depthwise -> 1x1 linear projection (no activation), each with
batch norm, ReLU6 after the first two, and a residual when it keeps stride and channels.
The blocks fall into up to four stages of width, 2, 3 and 4 x width channels (rounded to
multiples of 8, so widths below 8 build as 8); each stage's first block strides 2 while the
side is at least 8, and the stem strides 2 on inputs of side 32 or more, so 224x224 images
end at 7x7 as in the paper and 8x8 digits at 4x4. The paper's last 1x1 conv to 1280 channels
is left out: the head reads the last block's channels, so params ~ width^2 * depth.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.models.layout import Backbone, Layout, stride
from edgekd.models.registry import ArchSpec, register

EXPANSION = 6  # hidden channels = EXPANSION x input channels (the paper's t); the first block uses 1
STAGES = 4


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


@register("mobilenetv2")
class MobileNetV2(Backbone):
    def __init__(self, spec: ArchSpec, expansion: int = EXPANSION):
        super().__init__()
        ops = self.begin("mobilenetv2", spec)
        cin = make_divisible(spec.width)
        step, side = stride(ops.side, 32)
        layers: list[nn.Module] = [ops.conv(ops.channels, cin, 3, step, 1, bias=False), ops.norm(cin), nn.ReLU6()]
        stages = min(spec.depth, STAGES)
        for i in range(spec.depth):
            stage = i * stages // spec.depth
            first = i == 0 or stage != (i - 1) * stages // spec.depth
            step, side = stride(side, 8) if first else (1, side)
            cout = make_divisible(spec.width * (stage + 1))
            layers.append(InvertedResidual(ops, cin, cout, step, expansion if i else 1))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, spec.classes)

