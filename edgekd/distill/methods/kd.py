"""Response-based distillation (Hinton, Vinyals & Dean 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.methods.base import Batch, Method, register


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch.

    Both sides stay in log space (log_target=True), so the value is finite at any T;
    T^2 keeps the gradient scale independent of T.
    """
    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature * temperature


@register
class KD(Method):
    """KL between temperature-softened teacher and student distributions, scaled by T^2."""

    name = "kd"
    family = "response"
    paper = "Hinton et al. 2015, Distilling the Knowledge in a Neural Network"
    summary = "T^2 * KL(softmax(t/T) || softmax(s/T))"

    def __init__(self, *, temperature: float = 2.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, batch: Batch) -> torch.Tensor:
        return soft_kl(batch.student, batch.teacher, self.temperature)
