"""DS-CNN (Zhang et al. 2017, the MLPerf Tiny keyword-spotting reference): conv stem -> `depth`
depthwise-separable blocks at `width` channels -> pool -> linear.

A block is a 3x3 depthwise conv + BN + ReLU, then a 1x1 pointwise conv + BN + ReLU. The stem
strides 2 on inputs of side 16 or more (the reference's 49x10 MFCCs, as (1, 49, 10), stay
at full size; 40 MFCC frames as (C, L) halve); blocks keep the resolution, as in the
reference, except that a block strides 2 while the side is still 64 or more, so 224x224
images and 4000-long signals shrink to a side of 28 or so first.
"""

from __future__ import annotations

from torch import nn

from edgekd.models.layout import Backbone, stride
from edgekd.models.registry import ArchSpec, register


@register("dscnn")
class DSCNN(Backbone):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        ops = self.begin("dscnn", spec)
        w = spec.width
        kernel = 5 if ops.conv is nn.Conv1d else 3
        step, side = stride(ops.side, 16)
        layers: list[nn.Module] = [ops.conv(ops.channels, w, kernel, step, kernel // 2, bias=False),
                                   ops.norm(w), nn.ReLU()]  # (N, w, *s/step)
        for _ in range(spec.depth):
            step, side = stride(side, 64)
            layers += [ops.conv(w, w, 3, step, 1, groups=w, bias=False), ops.norm(w), nn.ReLU(),  # depthwise
                       ops.conv(w, w, 1, bias=False), ops.norm(w), nn.ReLU()]                     # pointwise
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(w, spec.classes)

