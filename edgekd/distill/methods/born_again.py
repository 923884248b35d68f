"""Born-again networks (Furlanello et al. 2018): self-distillation, generation after generation."""

from __future__ import annotations

from edgekd.distill.methods.base import register
from edgekd.distill.methods.kd import KD


@register
class BornAgain(KD):
    """KD where the student has the teacher's architecture; `--chain N` repeats it N times."""

    name = "born-again"
    family = "self"
    paper = "Furlanello et al. 2018, Born-Again Neural Networks"
    summary = "T^2 * KL(softmax(t/T) || softmax(s/T)), student = teacher's architecture"
    same_architecture = True
