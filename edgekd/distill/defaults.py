"""Architectures chosen from the data when the recipe leaves them open.

The recipe's teacher.arch, width and depth default to "" and 0: "what fits this data". A
table (N, F) gets MLPs, since its columns have no order a convolution could slide along;
images (C, H, W) a residual teacher and MobileNet-style students, what edge image models
ship; signals (L,) and (C, L) keep the 1-D CNN tuned on MNIST-1D. The choice and its reason
go into the manifest and are shown before training.

Students follow the data's default family unless the user chose the teacher's family or
the students' (then generation 1 is the teacher's architecture, `student.shrink` narrower,
as before defaults existed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgekd.data import Splits
from edgekd.models.registry import split_arch
from edgekd.recipe import Recipe

Size = tuple[str, int, int]  # family, width, depth


@dataclass(frozen=True)
class Default:
    teacher: Size
    student: Size     # generation 1; later generations shrink its width
    why: str


DEFAULTS = {
    "table": Default(("mlp", 256, 3), ("mlp", 64, 2),
                     "columns of a table have no order a convolution could slide along"),
    "image": Default(("resnet", 32, 4), ("mobilenetv2", 16, 4),
                     "residual blocks make a strong image teacher; inverted residuals are what edge image "
                     "models ship"),
    "signal": Default(("cnn", 64, 4), ("cnn", 32, 4),
                      "a 1-D convolution with global pooling fits signals of any length"),
}
# the width and depth of a family when the user names the family but not its size
FAMILY_SIZES = {"cnn": (64, 4), "mlp": (256, 3), "resnet": (32, 4), "mobilenetv2": (32, 6), "dscnn": (64, 4)}
FALLBACK_SIZE = (64, 4)  # a plugin family


def family_size(family: str) -> tuple[int, int]:
    return FAMILY_SIZES.get(family, FALLBACK_SIZE)


def data_kind(splits: Splits) -> str:
    if splits.tabular:
        return "table"
    return "image" if len(splits.input_shape) == 3 else "signal"


@dataclass(frozen=True)
class Choice:
    recipe: Recipe               # teacher.arch, width and depth filled in
    student: Size | None         # generation 1 when the data chose the students' family, else None
    record: dict                 # what the manifest keeps and the console shows


def choose(recipe: Recipe, splits: Splits) -> Choice:
    """Fill the teacher's architecture the recipe leaves open, and say what the data chose."""
    kind = data_kind(splits)
    default = DEFAULTS[kind]
    t = recipe.teacher
    family = split_arch(t.arch)[0] if t.arch else default.teacher[0]
    width, depth = default.teacher[1:] if family == default.teacher[0] else family_size(family)
    filled = dataclasses.replace(t, arch=t.arch or family, width=t.width or width, depth=t.depth or depth)
    data_picks_students = not t.arch and not recipe.student.arch and not recipe.student.students
    record = {"data": kind, "input_shape": list(splits.input_shape), "why": default.why,
              "teacher": "file" if t.spec else "recipe" if t.arch else "data",
              "students": "data" if data_picks_students else "recipe"}
    return Choice(dataclasses.replace(recipe, teacher=filled), default.student if data_picks_students else None,
                  record)


def describe(choice: Choice, teacher_label: str, student_labels: list[str]) -> str:
    """The sentence shown before training."""
    r = choice.record
    shape = "x".join(map(str, r["input_shape"]))
    picked = [who for who, by in (("teacher", r["teacher"]), ("students", r["students"])) if by == "data"]
    reason = f" ({', '.join(picked)} chosen for {r['data']}s: {r['why']})" if picked else ""
    return (f"data: {r['data']} of {shape} per sample; teacher {teacher_label}, students "
            f"{', '.join(student_labels)}{reason}")
