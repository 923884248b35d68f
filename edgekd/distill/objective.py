"""The training objective: a weighted sum of named terms, returned as a dict for logging.

    loss = (1 - alpha) * CE(student, labels) + alpha * sum_m w_m * method_m(batch)

CE is averaged over the labelled rows only: transfer-set rows carry label -1.

Also how a recipe becomes an objective (`--method`, `--weight`, `--option`, `--plugin`)
and the check that it attaches to every teacher/student pair the chain will train.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.methods import Batch, Method, create
from edgekd.distill.plugins import load_plugin
from edgekd.errors import UserError
from edgekd.models import ArchSpec, build
from edgekd.recipe import method_options, method_weights

if TYPE_CHECKING:
    from edgekd.distill.teachers import Teacher
    from edgekd.recipe import Recipe


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


def build_objective(recipe: Recipe) -> Objective:
    """The recipe's methods with their weights and options; unknown names fail here, before any work."""
    weights = method_weights(recipe)
    for plugin in recipe.distill.plugins:
        load_plugin(Path(plugin))
    options = method_options(recipe)
    shared = {"temperature": recipe.distill.temperature, "layers": recipe.distill.layers}
    methods = {name: create(name, options[name], shared) for name in recipe.distill.methods}
    terms = {name: (m, weights.get(name, m.default_weight)) for name, m in methods.items()}
    mutual = [name for name, (m, _) in terms.items() if m.mutual]
    if mutual and (len(terms) > 1 or recipe.teacher.spec):
        raise UserError(f"{mutual[0]} trains peers without a teacher; use it alone, without --teacher")
    return Objective(terms, alpha=recipe.distill.alpha)


def check_pairs(recipe: Recipe, objective: Objective, teacher: Teacher, archs: list[ArchSpec],
                example: np.ndarray) -> None:
    """Attach the objective to untrained copies of every teacher/student pair: an unknown family,
    a layer name that matches nothing or a feature method on a teacher without layers fails
    now, not after training. (Seeds are set after this, and every member builds its own
    objective, so it changes no result.)"""
    original = teacher.module
    if original is None and teacher.kind == "edgekd":  # the built-in teacher, not trained yet
        original = build(teacher.spec)
    previous, x = original, torch.from_numpy(example)
    for spec in archs:
        student = build(spec)
        if objective.mutual:
            continue
        taught_by = original if recipe.chain.direct else previous
        if objective.needs_online_teacher and taught_by is None:
            methods = ", ".join(recipe.distill.methods)
            if teacher.members and recipe.teacher.primary:
                raise UserError(f"methods {methods} read the first teacher's intermediate layers, but the first "
                                f"--teacher ({teacher.members[0].source}) is {teacher.members[0].kind}; put a torch "
                                "teacher first")
            hint = " or give --primary-teacher to use the first one's" if teacher.members else ""
            raise UserError(f"methods {methods} read the teacher's intermediate layers; "
                            f"the {teacher.kind} teacher has none (use a torch teacher{hint})")
        objective.attach(student, taught_by, x)
        objective.detach()
        previous = student
