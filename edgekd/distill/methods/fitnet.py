"""Hint-based distillation (Romero et al. 2015): the student's features regress the teacher's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.methods.base import Batch, Method, register
from edgekd.distill.methods.features import FeatureTaps


def align(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give the teacher feature the student's layout: (N, C_s, *spatial_s) vs (N, C_t, *spatial_s)."""
    if s.ndim != t.ndim:  # e.g. an MLP student of a CNN teacher: compare globally pooled channels
        s, t = (x.flatten(2).mean(-1) if x.ndim > 2 else x for x in (s, t))
    if s.shape[2:] != t.shape[2:]:
        pool = F.adaptive_avg_pool1d if s.ndim == 3 else F.adaptive_avg_pool2d
        t = pool(t, s.shape[2:])
    return s, t


def adapter(s: torch.Tensor, t: torch.Tensor) -> nn.Module:
    """The regressor r: 1x1 conv for (N, C, *spatial) features, linear for (N, D)."""
    layer = {2: nn.Linear, 3: nn.Conv1d, 4: nn.Conv2d}[s.ndim]
    args = (s.shape[1], t.shape[1]) if s.ndim == 2 else (s.shape[1], t.shape[1], 1)
    return layer(*args).to(device=s.device, dtype=s.dtype)


@register
class FitNet(Method):
    """FitNets (Romero et al. 2015): mean over layers l of MSE(r_l(s_l), t_l), r_l a trained adapter.

    The adapters are this method's submodules: trained with the student, never exported.
    Unlike the paper's two-stage schedule, hints are trained jointly with the other terms.
    """

    name = "fitnet"
    family = "feature"
    paper = "Romero et al. 2015, FitNets: Hints for Thin Deep Nets"
    summary = "mean_l MSE(r_l(s_l), t_l), r_l a 1x1 conv or linear adapter"
    online_teacher = True

    def __init__(self, *, layers: tuple[str, ...] = ()):
        super().__init__()
        self.taps = FeatureTaps(layers, self.name)
        self.adapters = nn.ModuleList()

    def attach(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        pairs = [align(s, t) for s, t in self.taps.attach(student, teacher, example)]
        self.adapters = nn.ModuleList(adapter(s, t) for s, t in pairs)

    def detach(self) -> None:
        """Remove the hooks from both models (the adapters stay)."""
        self.taps.detach()

    def forward(self, batch: Batch) -> torch.Tensor:
        losses = []
        for r, (s, t) in zip(self.adapters, self.taps.pairs()):
            s, t = align(s, t)                   # (N, C_s, *sp), (N, C_t, *sp)
            losses.append(F.mse_loss(r(s), t))   # r(s): (N, C_t, *sp)
        return torch.stack(losses).mean()
