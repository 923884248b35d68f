"""Attention transfer (Zagoruyko & Komodakis 2017): match where the networks' activations are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.methods.base import Batch, Method, register
from edgekd.distill.methods.features import FeatureTaps
from edgekd.errors import UserError


def attention_map(a: torch.Tensor, p: float) -> torch.Tensor:
    """mean_c |A|^p: (N, C, *spatial) -> (N, *spatial). An (N, D) feature is one channel
    over D units, so its map is |a|^p itself."""
    return a.abs().pow(p) if a.ndim == 2 else a.abs().pow(p).mean(1)


def pooled_maps(s: torch.Tensor, t: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps at the smaller spatial size, flattened and L2-normalised per sample: (N, S)."""
    ms, mt = attention_map(s, p), attention_map(t, p)
    size = tuple(min(a, b) for a, b in zip(ms.shape[1:], mt.shape[1:]))
    pool = F.adaptive_avg_pool1d if ms.ndim == 2 else F.adaptive_avg_pool2d
    ms, mt = (m if m.shape[1:] == size else pool(m.unsqueeze(1), size).squeeze(1) for m in (ms, mt))
    return F.normalize(ms.flatten(1), dim=1), F.normalize(mt.flatten(1), dim=1)


@register
class Attention(Method):
    """Attention transfer (Zagoruyko & Komodakis 2017): beta/2 * mean_l mean_{n,s} (Q_s - Q_t)^2,
    Q = normalize(mean_c |A|^p) per sample.

    The paper's loss (its code's `(at(x) - at(y)).pow(2).mean()` times beta/2): the mean over
    the map's S elements keeps beta fit for any map size. The paper's beta = 1000 gives this
    term more gradient than kd on MNIST-1D and costs a cnn:8x4 student points, so the default
    is 100 (benchmarks/methods.py measures both). The unsquared norm weighted 100 that edgekd
    used before sent 10x kd's gradient and 100x cross-entropy's, and lost 20 points. Channel
    counts may differ, so no adapters; a larger map is average-pooled to the smaller one's size.
    """

    name = "attention"
    family = "feature"
    paper = "Zagoruyko & Komodakis 2017, Paying More Attention to Attention"
    summary = "beta/2 * mean_l mean_{n,s} (Q_s - Q_t)^2, Q = normalize(mean_c |A|^p)"
    online_teacher = True

    def __init__(self, *, layers: tuple[str, ...] = (), p: float = 2.0, beta: float = 100.0):
        super().__init__()
        self.taps = FeatureTaps(layers, self.name)
        self.p = float(p)
        self.beta = float(beta)

    def attach(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        for (s, t), (s_path, t_path) in zip(self.taps.attach(student, teacher, example), self.taps.paths):
            # units of (N, D) features have no spatial order, so differing widths cannot be pooled
            if s.ndim != t.ndim or (s.ndim == 2 and s.shape[1] != t.shape[1]):
                self.taps.detach()
                flat = "student" if s.ndim == 2 else "teacher"
                raise UserError(f"method 'attention' compares spatial maps, but student layer {s_path!r} gives "
                                f"{tuple(s.shape)} and teacher layer {t_path!r} gives {tuple(t.shape)}; choose "
                                "layers with (N, C, L) or (N, C, H, W) outputs (--hint-layer STUDENT:TEACHER), "
                                f"which only a cnn has: for an mlp {flat}, use fitnet or rkd")

    def detach(self) -> None:
        """Remove the hooks from both models."""
        self.taps.detach()

    def forward(self, batch: Batch) -> torch.Tensor:
        losses = []
        for s, t in self.taps.pairs():
            qs, qt = pooled_maps(s, t, self.p)          # (N, S) each, unit norm per row
            losses.append((qs - qt).pow(2).mean())      # mean over N and S, as the paper's code
        return self.beta / 2 * torch.stack(losses).mean()
