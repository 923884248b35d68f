"""The training objective: a weighted sum of named terms, returned as a dict for logging.

    loss = (1 - alpha) * CE(student, labels) + alpha * sum_m w_m * method_m(batch)

CE is averaged over the labelled rows only: transfer-set rows carry label -1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.methods import Batch, Method


class Objective(nn.Module):
    def __init__(self, terms: dict[str, tuple[Method, float]] | None = None, alpha: float = 0.0):
        super().__init__()
        terms = terms or {}
        self.terms = nn.ModuleDict({name: method for name, (method, _) in terms.items()})
        self.weights = {name: float(w) for name, (_, w) in terms.items()}
        self.alpha = float(alpha) if terms else 0.0   # no terms: plain cross-entropy

    @property
    def mutual(self) -> bool:
        return any(m.mutual for m in self.terms.values())

    @property
    def peers(self) -> int:
        return max((getattr(m, "peers", 1) for m in self.terms.values() if m.mutual), default=1)

    @property
    def needs_teacher(self) -> bool:
        return bool(self.terms) and not self.mutual

    @property
    def same_architecture(self) -> bool:
        return any(m.same_architecture for m in self.terms.values())

    @property
    def needs_online_teacher(self) -> bool:
        return any(m.online_teacher for m in self.terms.values())

    def attach(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        for method in self.terms.values():
            method.attach(student, teacher, example)

    def detach(self) -> None:
        for method in self.terms.values():
            method.detach()

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        labelled = batch.labels >= 0
        if labelled.any():
            logits = batch.student
            if logits.ndim == 3:  # (K, B, C) peers of a cohort: each peer's CE, averaged
                out["ce"] = torch.stack([F.cross_entropy(p[labelled], batch.labels[labelled]) for p in logits]).mean()
            else:
                out["ce"] = F.cross_entropy(logits[labelled], batch.labels[labelled])
        else:
            out["ce"] = batch.student.new_zeros(())
        total = (1.0 - self.alpha) * out["ce"]
        for name, method in self.terms.items():
            out[name] = method(batch)
            total = total + self.alpha * self.weights[name] * out[name]
        out["loss"] = total
        return out
