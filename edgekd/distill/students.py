"""The students: each generation's architecture, planned from the recipe and the teacher.

An explicit `--students` list, generation 1 shrunk by `student.shrink` per step, or (self-
distillation) the teacher's own architecture. Every student carries the input
standardization of the data it is trained on (`input_stats`), and input noise is scaled by
it (`augment_scale`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from edgekd.data import Splits
from edgekd.data.rows import chunks, on_disk
from edgekd.distill.defaults import family_size
from edgekd.distill.teachers import Teacher
from edgekd.errors import UserError
from edgekd.models import ArchSpec
from edgekd.models.registry import Stat, split_arch
from edgekd.recipe import Recipe


def plan_students(recipe: Recipe, teacher: Teacher, splits: Splits, same_architecture: bool = False,
                  strict: bool = True, default: tuple[str, int, int] | None = None) -> list[ArchSpec]:
    """Generation k's architecture: an explicit list, or generation 1 shrunk by `shrink` per step
    (self-distillation keeps the teacher's architecture throughout). Generation 1 is the
    teacher's architecture `shrink` narrower, or `default` (family, width, depth: the data's
    students, edgekd.distill.defaults) when its family differs from the teacher's. `strict`
    off (resume) lets a run recorded before a refusal existed plan as it did then."""
    mean, std = input_stats(splits, recipe.data.standardize)
    n = recipe.chain.generations
    s = recipe.student
    if same_architecture:
        if teacher.spec is None:
            raise UserError("self-distillation copies the teacher's architecture; a "
                            f"{teacher.kind} teacher has no edgekd architecture")
        if strict and (s.students or s.arch or s.width or s.depth):
            raise UserError("self-distillation keeps the teacher's architecture in every generation; "
                            "drop --student, --width, --depth and --students")
        return [dataclasses.replace(teacher.spec, mean=mean, std=std)] * n
    if s.students:
        if len(s.students) < n or (strict and len(s.students) > n):
            listed = f"{len(s.students)} architecture{'s' * (len(s.students) != 1)}"
            raise UserError(f"--students lists {listed} for {n} generations; give --chain {len(s.students)} "
                            f"(chain.generations) or list {n}")
        if strict and (s.arch or s.width):
            raise UserError("--students sets every generation's family and width; drop --student and --width")
        depth = s.depth or (teacher.spec or recipe.teacher).depth  # for entries without xDEPTH
        return [_parse_student(text, splits, mean, std, depth) for text in s.students[:n]]
    base = teacher.spec
    family, _, options = split_arch(s.arch or (default[0] if default else base.family if base else
                                               recipe.teacher.arch))
    if base is not None and base.family == family:  # the teacher's architecture, narrower
        width, depth = s.width or max(1, round(base.width * s.shrink)), s.depth or base.depth
        options = options or base.options
    else:  # another family than the teacher's: the data's students, or the family's own size
        own = default[1:] if default is not None and default[0] == family else family_size(family)
        width, depth = s.width or own[0], s.depth or own[1]
    return [ArchSpec(family, max(1, round(width * s.shrink ** (k - 1))), depth, splits.input_shape,
                     splits.classes, mean, std, options) for k in range(1, n + 1)]


def _parse_student(text: str, splits: Splits, mean: Stat, std: Stat, depth: int) -> ArchSpec:
    """"cnn:16" (that width, the default depth), "mlp:32x2" (width x depth), either followed by
    the family's options: "mobilenetv2:16x4/expansion=4"."""
    family, size, options = split_arch(text)
    width, _, own_depth = size.partition("x")
    try:
        return ArchSpec(family, int(width), int(own_depth or depth), splits.input_shape, splits.classes,
                        mean, std, options)
    except ValueError:
        raise UserError(f"student {text!r}: expected FAMILY:WIDTH or FAMILY:WIDTHxDEPTH, e.g. cnn:16x4, "
                        "optionally followed by /KEY=VALUE options") from None


def input_stats(splits: Splits, how: str) -> tuple[Stat, Stat]:
    """Mean and std that standardize the inputs inside every model: one pair for the whole
    input, or (data.standardize "feature", "auto" for tables) one per column, since a table's
    columns may differ in scale by orders of magnitude and one std would flatten the small ones."""
    per_column = how == "feature" or (how == "auto" and splits.tabular)
    if per_column and splits.x_train.ndim != 2:
        raise UserError(f"data.standardize = \"feature\" standardizes the columns of (N, F) inputs; "
                        f"these are {tuple(splits.input_shape)} per sample: use global")
    if on_disk(splits.x_train):
        mean, std = _streamed_stats(splits.x_train, per_column)
    else:
        x = splits.x_train.astype(np.float64)  # float32 squares overflow for values beyond ~1e19
        mean, std = (x.mean(0), x.std(0)) if per_column else (x.mean(), x.std())
    if per_column:
        std = np.where(std == 0, 1.0, std)  # a constant column carries nothing; leave it centred, not divided by zero
        return tuple(np.asarray(mean).tolist()), tuple(np.asarray(std).tolist())
    std = float(std)
    return float(mean), std if std > 0 else 1.0


def _streamed_stats(x, per_column: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over rows read chunk by chunk, merged exactly (Chan et al.'s pairwise update)."""
    n, mean, m2 = 0, 0.0, 0.0
    for chunk in chunks(x):
        c = chunk.astype(np.float64).reshape(len(chunk), -1)
        c = c if per_column else c.reshape(-1, 1)
        k, c_mean = len(c), c.mean(0)
        c_m2 = ((c - c_mean) ** 2).sum(0)
        delta = c_mean - mean
        mean = mean + delta * k / (n + k)
        m2 = m2 + c_m2 + delta ** 2 * n * k / (n + k)
        n += k
    std = np.sqrt(m2 / n)
    return (mean, std) if per_column else (mean[0], std[0])


def augment_scale(spec: ArchSpec) -> float | torch.Tensor:
    """Input noise is scaled by the std the model standardizes with: per column when it does."""
    return torch.tensor(spec.std, dtype=torch.float32) if isinstance(spec.std, tuple) else spec.std
