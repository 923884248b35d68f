"""Relational knowledge distillation (Park et al. 2019): match the geometry of a batch, not its points."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.methods.base import Batch, Method, register
from edgekd.distill.methods.features import FeatureTaps, parse_layers


def distances(x: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances; the clamp keeps sqrt's gradient finite on the diagonal."""
    return (x.unsqueeze(0) - x.unsqueeze(1)).pow(2).sum(-1).clamp_min(1e-12).sqrt()


def angles(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B, B): [j, i, k] = cos of the angle at x_j between x_i and x_k, or 0 where
    edge j-i or j-k is not in `keep` (B, B), so a zero vector is never normalised into a gradient."""
    e = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), dim=2) * keep[..., None]  # [j, i] = unit x_j -> x_i, (B, B, D)
    return e @ e.transpose(1, 2)


def rkd_distance(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Huber loss between distances over ordered pairs i != j, each normalised by its batch mean."""
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    ds, dt = distances(s)[off], distances(t)[off]              # (B(B-1),)
    return F.smooth_l1_loss(ds / ds.mean().clamp_min(1e-12), dt / dt.mean().clamp_min(1e-12))


def rkd_angle(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Huber loss between the cosines of all triplets of distinct samples, averaged.

    Triplets with i == k, or with an edge between duplicated rows (which has no direction),
    give equal cosines on both sides, so they add nothing to the sum; only the count
    excludes them. Cheaper than indexing a (B, B, B) mask, and exact up to rounding.
    """
    keep = (s.unsqueeze(0) != s.unsqueeze(1)).any(-1) & (t.unsqueeze(0) != t.unsqueeze(1)).any(-1)  # (B, B)
    a = keep.sum(1).float()                                   # a_j: points apart from x_j on both sides
    count = (a * (a - 1)).sum().clamp_min(1)                  # ordered (i, k), i != k, both apart from x_j
    return F.smooth_l1_loss(angles(s, keep), angles(t, keep), reduction="sum") / count


@register
class RKD(Method):
    """RKD (Park et al. 2019): w_d * Huber(psi_D(s), psi_D(t)) + w_a * Huber(psi_A(s), psi_A(t)),
    psi_D pairwise distances over their batch mean, psi_A cosines of triplet angles.

    Works on the logits by default, or on the flattened outputs of `layers` (then the
    teacher runs on every batch). Student and teacher dimensions may differ. The paper's
    weights 25 and 50 keep their 1:2 ratio here; scale the whole term with --weight.
    """

    name = "rkd"
    family = "relation"
    paper = "Park et al. 2019, Relational Knowledge Distillation"
    summary = "Huber on batch-normalised pairwise distances + on triplet angle cosines"

    def __init__(self, *, layers: tuple[str, ...] = (), distance_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)
        given = parse_layers(layers)[0][0] is not None   # no layers means the logits here
        self.taps = FeatureTaps(layers, self.name) if given else None
        self.online_teacher = self.taps is not None   # per instance: only hooked layers need the teacher live

    def attach(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        if self.taps is not None:
            self.taps.attach(student, teacher, example)

    def detach(self) -> None:
        """Remove the hooks from both models, if `layers` put any there."""
        if self.taps is not None:
            self.taps.detach()

    def forward(self, batch: Batch) -> torch.Tensor:
        pairs = self.taps.pairs() if self.taps is not None else [(batch.student, batch.teacher)]
        losses = []
        for s, t in pairs:
            s, t = s.flatten(1), t.flatten(1)    # (B, D_s), (B, D_t)
            loss = s.sum() * 0                   # a batch of one has no pairs, of two no triplets
            if len(s) >= 2:
                loss = loss + self.distance_weight * rkd_distance(s, t)
            if len(s) >= 3:
                loss = loss + self.angle_weight * rkd_angle(s, t)
            losses.append(loss)
        return torch.stack(losses).mean()
