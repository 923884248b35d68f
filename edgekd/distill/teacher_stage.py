"""The teacher stage of a run: open the recipe's teacher and check it against the data
(before the run directory exists), then train the built-in teacher, or copy a user's
teacher (each member of an ensemble) into the run, and evaluate it.

The run's copy is what a resumed run loads, so resume and re-runs need nothing outside it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from edgekd import runtimes
from edgekd.data import Splits
from edgekd.distill.members import Context, train_member
from edgekd.distill.objective import Objective
from edgekd.distill.students import input_stats
from edgekd.distill.teachers import Teacher, check_against, data_files, load_teacher, onnx_data_files
from edgekd.errors import UserError
from edgekd.models import ArchSpec, count_macs, load_model
from edgekd.models.registry import split_arch
from edgekd.recipe import Recipe
from edgekd.records import TeacherEntry
from edgekd.runs import TEACHER_FILES, Run, atomic_path, model_files, teacher_file, write_bools, write_json


def open_teacher(recipe: Recipe, splits: Splits, plan: Objective, run: Run | None) -> Teacher:
    """The teacher, loaded and checked against the data, or (built-in) only its architecture:
    nothing is trained or written yet. On resume a user's teacher comes from the run's copy."""
    t = recipe.teacher
    family, _, options = split_arch(t.arch)
    if plan.mutual:  # peers teach each other: the teacher recipe only sizes generation 1
        return Teacher("none", "-", spec=ArchSpec(family, t.width, t.depth, splits.input_shape, splits.classes,
                                                  options=options))
    if not t.spec:
        spec = ArchSpec(family, t.width, t.depth, splits.input_shape, splits.classes,
                        *input_stats(splits, recipe.data.standardize), options)
        return Teacher("edgekd", "teacher", spec=spec)  # built (so checked) by check_pairs
    specs = (t.spec, *t.ensemble)
    members = []
    for i, source in enumerate(specs):
        copies = model_files(run.teacher_copy_dir(i, len(specs))) if run else []
        teacher = load_teacher(str(copies[0] if copies else source))
        check_against(teacher, splits.x_val, splits.classes)
        layout = run or Run(Path())  # where the copy will go: refuse now a data file that would collide there
        copied_data_files(teacher, layout.teacher_copy_dir(i, len(specs)), {layout.eval_path("teacher")})
        members.append(teacher)
    return members[0] if len(members) == 1 else Teacher.ensemble(members, t.combine, t.primary)


def finish_teacher(ctx: Context, teacher: Teacher) -> Teacher:
    """Train the built-in teacher, or keep a copy of a user's teacher in the run (so resume
    and re-runs need nothing outside it) and evaluate it; finished work is not redone."""
    run, recipe = ctx.run, ctx.recipe
    if teacher.kind == "none":
        return teacher
    if not recipe.teacher.spec:
        if not run.eval_path("teacher").exists():
            train_member(ctx, "teacher", teacher.spec, None, epochs=recipe.teacher.epochs)
        module, spec = load_model(run.model_path("teacher"))
        return Teacher("edgekd", "teacher", module=module, spec=spec)
    parts = teacher.members or [teacher]
    for i, part in enumerate(parts):
        directory = run.teacher_copy_dir(i, len(parts))
        if Path(part.source).parent.resolve() != directory.resolve():  # not already the run's copy
            copy_into(part, directory, {run.eval_path("teacher")})
    if not run.eval_path("teacher").exists():
        _evaluate_teacher(ctx, teacher, source=", ".join((recipe.teacher.spec, *recipe.teacher.ensemble)))
    return dataclasses.replace(teacher, source="teacher")


def _evaluate_teacher(ctx: Context, teacher: Teacher, source: str) -> None:
    """Score a user's teacher on the test and validation sets; record it with its size on disk."""
    s = ctx.splits
    preds = teacher.logits(s.x_test).argmax(1).numpy()
    write_bools(ctx.run.correct_path("teacher"), preds == s.y_test)  # for paired gains (report.uncertainty)
    entry: TeacherEntry = {
        "role": "teacher", "source": source, "kind": teacher.kind, "details": teacher.describe(),
        "test_acc": float((preds == s.y_test).mean()),
        "val_acc": float((teacher.logits(s.x_val).argmax(1).numpy() == s.y_val).mean())}
    if (params := teacher.params()) is not None:
        entry["params"] = params
    count = len(teacher.members) or 1  # the run's copy of each member
    copies = [f for i in range(count) for f in model_files(ctx.run.teacher_copy_dir(i, count))]
    onnx = runtimes.SIZE_KIND  # an ONNX teacher's copy sits on the artifacts' size axis as it is
    kinds = {onnx.format.name if f.suffix == Path(onnx.file).suffix else runtimes.REFERENCE.format.name for f in copies}
    if len(kinds) == 1:  # the report's size point for the teacher, labelled by its format, external weights too
        data = [f.parent / d for f in copies if f.suffix == Path(onnx.file).suffix for d in onnx_data_files(f)]
        entry["size_bytes"], entry["size_format"] = sum(f.stat().st_size for f in copies + data), kinds.pop()
    if teacher.spec is not None and not teacher.members:
        entry["arch"] = teacher.spec.to_dict()
        entry["label"] = teacher.spec.label()
        entry["macs"] = count_macs(teacher.module, teacher.spec.input_shape)
    write_json(ctx.run.eval_path("teacher"), entry)
    ctx.run.update_manifest(lambda m: m["members"].update(teacher=entry))


def copy_into(teacher: Teacher, directory: Path, reserved: set[Path] = frozenset()) -> Path:
    """Keep a copy of a user's teacher in the run, so resume and re-runs need nothing outside it:
    an ONNX model's external data files first, at their relative locations, then the model, whose
    presence marks the copy whole."""
    dest = teacher_file(directory, teacher.kind)
    source = Path(teacher.source)
    for location in copied_data_files(teacher, directory, reserved):
        with atomic_path(directory / location, (source.parent / location).stat().st_size) as tmp:
            shutil.copyfile(source.parent / location, tmp)
    with atomic_path(dest, source.stat().st_size) as tmp:
        shutil.copyfile(source, tmp)
    return dest


def copied_data_files(teacher: Teacher, directory: Path, reserved: set[Path]) -> list[Path]:
    """A teacher's external data files, relative to its folder, refused when one would land on
    a file of the run (`reserved`, or a teacher file name) in `directory`."""
    found = data_files(teacher)
    taken = {*reserved, *(teacher_file(directory, kind) for kind in TEACHER_FILES)}
    for location in found:
        if directory / location in taken:  # it would overwrite the run's file, or pose as another teacher
            raise UserError(f"{teacher.source} keeps its weights in {location}, a name edgekd uses for the run's "
                            "own files; save it under another location")
    return found
