"""The chain: teacher -> gen-1 -> gen-2 -> ..., each generation with a scratch baseline.

Teacher-assistant order (default): generation k is taught by generation k-1. With
`chain.direct`, every generation is taught by the original teacher instead. This module
owns the order and the checks before the run directory exists; the stages live beside it:

    objective.py      the recipe's methods, weights and options; the teacher/student pair check
    teacher_stage.py  open, copy (or train) and evaluate the teacher
    students.py       each generation's architecture and input standardization
    members.py        train, resume or skip one member, and record it
    plugins.py        `--plugin` files

A finished member is skipped by `--resume`; an unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from edgekd import diskspace, host
from edgekd.bench.remote import Remote
from edgekd.data import load_run_splits, load_splits, load_transfer
from edgekd.data.load import resolve as resolve_data
from edgekd.distill.compute import resolve as resolve_compute
from edgekd.distill.defaults import choose, describe
from edgekd.distill.linear import fit_linear
from edgekd.distill.members import Context, train_controls, train_member
from edgekd.distill.objective import build_objective, check_pairs
from edgekd.distill.students import input_stats, plan_students
from edgekd.distill.teacher_stage import finish_teacher, open_teacher
from edgekd.errors import UserError
from edgekd.locking import run_lock
from edgekd.models import ArchSpec
from edgekd.recipe import Recipe, check_call, from_dict, validate
from edgekd.records import Events
from edgekd.runs import LINEAR, Run, default_run_dir, link_latest, remove_leftovers, write_bools


def distill(recipe: Recipe | None = None, out: Path | None = None, resume: Path | None = None,
            on_event: Events | None = None, threads: int | None = None, wait: bool = False,
            teacher_only: bool = False, remote: Remote | None = None, compute: Placement = (None, None)) -> Run:
    """Run (or resume) a whole chain and return its run directory. `threads` overrides the
    recipe's train.threads (a resumed run may land on a busier machine). The run directory is
    locked throughout (edgekd.locking); `wait` queues behind another writer instead of refusing.
    `teacher_only` stops once the teacher is ready (edgekd tune searches with it, then resumes
    the run to train the chain). `remote`: the budget's target over ssh, which then measures
    the candidates instead of this host and the predictor. `compute`: the device and precision
    a resumed run continues on (None: as saved)."""
    check_call(recipe, out=out, resume=resume, threads=threads)
    on_event = on_event or (lambda event: None)
    root = run_root(out, resume)
    with chain_lock(root, resume, wait, on_event):
        return _distill_locked(recipe, root, resume, on_event, threads, teacher_only, remote, compute)


Placement = tuple[str | None, str | None]  # a resumed run's --device and --precision (None: as saved)


def run_root(out: Path | None, resume: Path | None) -> Path:
    """The directory a distill call writes: the resumed run (refused now when it is missing or
    not a run, before anything is locked), `out`, or a new one under runs/."""
    if resume is not None:
        return Run.open(resume).root
    return out or default_run_dir()


def chain_lock(root: Path, resume: Path | None, wait: bool, on_event: Events):
    """distill's hold on its run directory (edgekd.locking), from planning to report."""
    return run_lock(root, "distill --resume" if resume is not None else "distill", wait=wait, create=resume is None,
                    on_event=on_event)


def resume_hint(root: Path):
    """A full disk mid-run says how to go on: `--resume` once the run's manifest exists."""
    return diskspace.then(f"run `edgekd distill --resume {root}`", when=Run(root).manifest_path.is_file)


def _distill_locked(recipe: Recipe | None, root: Path, resume: Path | None, on_event: Events,
                    threads: int | None, teacher_only: bool = False, remote: Remote | None = None,
                    compute: Placement = (None, None)) -> Run:
    run = Run.open(resume) if resume is not None else None
    if run is not None:
        remove_leftovers(run.root)  # a killed run's half-written files (a plot, a checkpoint)
        saved = run.manifest()["recipe"]
        # runs from before a key resume as they began
        saved.setdefault("data", {}).setdefault("standardize", "global")
        saved.setdefault("train", {}).setdefault("min_steps", 0)
        saved["train"].setdefault("select", "best")
        recipe = validate(from_dict(saved, where=f"{run.manifest_path} recipe"))
        device, precision = compute  # a run trained on a GPU resumes on a machine without one
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(
            recipe.train, device=device or recipe.train.device, precision=precision or recipe.train.precision))
    else:
        recipe = validate(recipe or Recipe())
    default_threads = torch.get_num_threads()
    if threads or recipe.train.threads:
        torch.set_num_threads(threads or recipe.train.threads)
    try:
        with resume_hint(root):
            return _distill(recipe, root, run, on_event, teacher_only, remote)
    finally:
        torch.set_num_threads(default_threads)  # a library call leaves the process as it found it


def _budget_search(recipe: Recipe, plan, splits, choice, teacher, on_event: Events, remote: Remote | None = None):
    """edgekd.distill.candidates.search, for a recipe with a [budget]: students smaller than the teacher."""
    from edgekd.distill.candidates import search
    from edgekd.models import build, count_params

    if plan.same_architecture:
        raise UserError("a budget chooses the students' architectures, and self-distillation keeps the "
                        "teacher's: drop the budget or the method")
    mean, std = input_stats(splits, recipe.data.standardize)
    limit = None if plan.mutual else teacher.params() if teacher.module is not None or teacher.spec is None \
        else count_params(build(teacher.spec))
    return search(recipe, splits, choice.student if choice else None, mean, std, on_event, below_params=limit,
                  remote=remote)


def _fit_linear(ctx: Context) -> None:
    """The run's linear reference (edgekd.distill.linear), before the teacher: seconds of work
    that tell the user at once whether the networks earn their keep."""
    ctx.on_event({"kind": "stage", "member": LINEAR, "status": "start"})
    record, correct = fit_linear(ctx.splits, ctx.recipe.data.seed)
    write_bools(ctx.run.correct_path(LINEAR), correct)
    ctx.run.update_manifest(lambda m: m.update({LINEAR: record}))
    ctx.on_event({"kind": "stage", "member": LINEAR, "status": "done", "test_acc": record["test_acc"]})


def _distill(recipe: Recipe, root: Path, run: Run | None, on_event: Events, teacher_only: bool = False,
             remote: Remote | None = None) -> Run:
    """The chain for a new run (`run` None) or the resumed `run`."""
    resume = run is not None
    saved = run.manifest() if resume else {}
    if not resume:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(
            recipe.data, spec=resolve_data(recipe.data.spec), transfer=resolve_data(recipe.data.transfer)))
    plan = build_objective(recipe)  # unknown methods, options or weights fail here, before any work
    compute = resolve_compute(recipe.train.device, recipe.train.precision)  # no such GPU: before any work too
    from edgekd.targets import HOST, load_target

    benched = recipe.bench.enabled and recipe.export.enabled
    for target in recipe.bench.targets:  # a typo must not surface after training, nor be saved with --no-export
        if benched or target != HOST:  # probing the host takes seconds: only for a bench that will run
            load_target(target)
    transfer = recipe.data.transfer
    if plan.mutual:  # peers have no teacher to label a transfer set
        if str(transfer) not in ("auto", "0") and not resume:  # runs from before this rule still resume
            mutual = next(name for name, m in plan.terms.items() if m.mutual)
            raise UserError(f"--method {mutual} trains peers without a teacher, and only a teacher labels a "
                            "transfer set; "
                            "drop --transfer")
        transfer = "0"
    on_event({"kind": "stage", "member": "data", "status": "start"})
    labelled = load_run_splits(saved, run.root) if resume else \
        load_splits(recipe.data.spec, recipe.data.val_fraction, recipe.data.seed,
                    follow_symlinks=recipe.data.follow_symlinks, load=recipe.data.load,
                    workers=recipe.data.workers)
    splits = load_transfer(labelled, transfer, recipe.data.load)
    # Everything checkable is checked before the run directory exists: a bad teacher or student
    # must neither cost the teacher's training nor leave a half-made run that blocks a retry.
    choice = None if resume else choose(recipe, splits)  # a saved recipe has its architecture filled in
    if choice:
        recipe = choice.recipe
    teacher = open_teacher(recipe, splits, plan, run)
    found = None
    if recipe.budget.active and not resume:  # the students the budget allows, measured before any training
        found = _budget_search(recipe, plan, splits, choice, teacher, on_event, remote)
        recipe = dataclasses.replace(recipe, chain=dataclasses.replace(recipe.chain, generations=len(found.chain)))
    recorded = saved.get("students")
    archs = ([ArchSpec.from_dict(d) for d in recorded] if recorded  # resume builds what the run planned
             else found.chain if found
             else plan_students(recipe, teacher, splits, plan.same_architecture, strict=not resume,
                                default=choice.student if choice else None))
    check_pairs(recipe, plan, teacher, archs, splits.x_val[:8])
    needed = diskspace.run_bytes(recipe, teacher, archs, splits, plan.peers if plan.mutual else 1)
    if resume:  # what is written already counts
        diskspace.check_space(run.root, needed - diskspace.used_bytes(run.root),
                              f"free space and run `edgekd distill --resume {run.root}` again")
    else:
        free = diskspace.check_space(root, needed, "free space or choose another --out")
        run = Run.create(root, {
            "name": root.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "recipe": recipe.to_dict(), "versions": host.versions(), "host": host.describe(),
            "torch_threads": torch.get_num_threads(), "members": {}, "compute": compute.record(),
            "data": {**splits.describe(), "augmentation": splits.augmentation if recipe.data.augment else "none"},
            "students": [a.to_dict() for a in archs], "architecture": choice.record,
            "disk": {"estimate_bytes": needed, "free_bytes": free},
            **({"budget": found.record} if found else {}),
            "status": "running"})
        link_latest(run.root)
    on_event({"kind": "run", "root": str(run.root)})
    if choice:  # shown once the run exists: a refusal above stays one sentence
        teacher_label = teacher.spec.label() if teacher.kind != "none" and not recipe.teacher.spec \
            else recipe.teacher.spec or "none (peers)"
        on_event({"kind": "message", "text": describe(choice, teacher_label, [a.label() for a in archs])})
    if resume and saved.get("compute") != compute.record():  # resumed on another device: say where each part ran
        run.update_manifest(lambda m: m.setdefault("compute_history", []).append(compute.record()))
    ctx = Context(run, recipe, splits, on_event, compute)
    torch.manual_seed(recipe.train.seed)

    if LINEAR not in run.manifest():
        _fit_linear(ctx)
    teacher = finish_teacher(ctx, teacher)
    if teacher_only:
        return run
    previous = teacher
    for k, spec in enumerate(archs, start=1):
        taught_by = None if plan.mutual else teacher if recipe.chain.direct else previous
        previous = train_member(ctx, f"gen-{k}", spec, taught_by, mutual=plan.mutual)
        if recipe.chain.baseline:
            train_controls(ctx, k, spec, transfer_used=not plan.mutual)
    run.update_manifest(lambda m: m.update(status="trained"))
    return run


