"""Logit matching: mean squared error between raw logits (Ba & Caruana 2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.methods.base import Batch, Method, register


@register
class MSELogits(Method):
    """Mean over batch and classes of (s - t)^2; the T -> infinity limit of KD, up to scale."""

    name = "mse-logits"
    family = "response"
    paper = "Ba & Caruana 2014, Do Deep Nets Really Need to be Deep?"
    summary = "mean((s - t)^2)"

    def forward(self, batch: Batch) -> torch.Tensor:
        return F.mse_loss(batch.student, batch.teacher)
