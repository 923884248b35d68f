"""MobileNetV2, ResNet-18 and ResNet-50 at the published layouts, random weights (latency does
not depend on the weights), for holding the latency predictor against published numbers.

ResNet-18 is edgekd's own `resnet:64x8` at 224x224 and 1000 classes: the same layers, the same
11,689,512 parameters (tests/test_models.py checks it), so the predictor is validated on what
edgekd builds. edgekd's `mobilenetv2` is an edge-sized variant (stages of 1-4 x width, no final
1280-channel convolution) and no ResNet-50 has bottleneck blocks in edgekd, so those two stay
written here from the papers' layer tables (Sandler et al. 2018; He et al. 2016)."""

from __future__ import annotations

from torch import nn

from edgekd.models import ArchSpec, build


def _conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [_conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   _conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2(classes=1000):
    # (expansion, channels, repeats, first stride)
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, cin = [_conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
    for t, c, n, s in table:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += [_conv_bn(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, stride):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, c, 1), _conv_bn(c, c, 3, stride), _conv_bn(c, 4 * c, 1, act=None))
        self.skip = _conv_bn(cin, 4 * c, 1, stride, act=None) if stride != 1 or cin != 4 * c else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.skip(x))


def _resnet(block, repeats, classes=1000):
    layers = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, (c, n) in enumerate(zip((64, 128, 256, 512), repeats)):
        for j in range(n):
            layers.append(block(cin, c, 2 if (j == 0 and i > 0) else 1))
            cin = c * block.expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def resnet18(classes=1000):
    return build(ArchSpec("resnet", 64, 8, (3, 224, 224), classes))


def resnet50(classes=1000):
    return _resnet(Bottleneck, (3, 4, 6, 3), classes)


MODELS = {"mobilenet_v2": mobilenet_v2, "resnet18": resnet18, "resnet50": resnet50}
