"""Member training: one member of a run (the built-in teacher, a generation, a scratch
control) trained, or resumed from its checkpoint, or skipped when finished; then saved,
evaluated on the test set and recorded in the manifest.

A member's eval.json is written last, so its existence means "finished". Every member
starts from weights seeded by its index, so gen-k and its scratch controls start alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd.data import Splits
from edgekd.data.rows import Rows, joined, on_disk
from edgekd.distill.compute import CPU, Compute
from edgekd.distill.methods.dml import Cohort
from edgekd.distill.objective import Objective, build_objective
from edgekd.distill.soft_targets import soft_targets
from edgekd.distill.students import augment_scale
from edgekd.distill.teachers import Teacher
from edgekd.distill.trainer import Schedule, TrainData, at_least_steps, evaluate, predict_logits, train
from edgekd.models import (
    ArchSpec,
    build,
    count_macs,
    count_params,
    load_model,
    save_model,
)
from edgekd.recipe import Recipe
from edgekd.records import Events, MemberEntry
from edgekd.runs import Run, read_json, write_bools, write_json, write_jsonl


@dataclass
class Context:
    """What every stage of one run reads: where it writes, what it trains, what it reports to."""

    run: Run
    recipe: Recipe
    splits: Splits
    on_event: Events
    compute: Compute = CPU     # where members train; what they write is on the CPU


def train_member(ctx: Context, name: str, spec: ArchSpec, teacher: Teacher | None,
                 epochs: int | None = None, mutual: bool = False, controls: list[str] | None = None) -> Teacher:
    """Train (or resume, or skip when finished) one member; returns it as a teacher for the next."""
    run, recipe, s = ctx.run, ctx.recipe, ctx.splits
    if run.eval_path(name).exists():
        ctx.on_event({"kind": "stage", "member": name, "status": "skip"})
        if name not in run.manifest()["members"]:  # killed between eval.json and the manifest update
            entry = read_json(run.eval_path(name))
            run.update_manifest(lambda m: m["members"].update({name: entry}))
        module, spec = load_model(run.model_path(name))
        return Teacher("edgekd", name, module=module, spec=spec)

    student, objective, data, schedule = prepare_job(recipe, s, name, spec, teacher, epochs, mutual,
                                                     device=ctx.compute.device,
                                                     cache=run.soft_targets_path(name))
    index = int(name.split("-")[1]) if "-" in name else 0

    asked = recipe.train.epochs if epochs is None else epochs
    raised = {"raised_from": asked, "min_steps": recipe.train.min_steps} if schedule.epochs > asked else {}
    ctx.on_event({"kind": "stage", "member": name, "status": "start",
                  "epochs": schedule.epochs + schedule.finetune_epochs, "arch": spec.label(),
                  "teacher": teacher.source if teacher else None, **raised})
    run.member_dir(name).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = train(student, objective, data, schedule, checkpoint=run.checkpoint_path(name),
                       on_epoch=lambda row: ctx.on_event({"kind": "epoch", "member": name, **row}),
                       compute=ctx.compute)
    finally:
        objective.detach()  # hooks off: this student teaches the next generation clean
        student.cpu()  # scored, saved and handed on from the CPU, as on any machine
        if teacher is not None:
            teacher.to(torch.device("cpu"))
    seconds = time.perf_counter() - started
    peers = list(student.peers) if mutual else [student]
    scores = [evaluate(p, s.x_val, s.y_val) for p in peers] if mutual else [(result["val_acc"], 0.0)]
    chosen = max(range(len(peers)), key=lambda i: (scores[i][0], -scores[i][1]))  # as trainer.evaluate ranks peers
    peer_val = [acc for acc, _ in scores]
    student = peers[chosen]
    save_model(student, spec, run.model_path(name))
    write_jsonl(run.metrics_path(name), result["history"])

    y_test = torch.from_numpy(s.y_test)
    student.eval()
    mine = predict_logits(student, s.x_test).argmax(1)
    correct = mine == y_test  # per test row: what paired gains compare (report.uncertainty)
    test_acc = correct.float().mean().item()
    entry: MemberEntry = {
        "role": name.split("-")[0], "index": index, "arch": spec.to_dict(), "label": spec.label(),
        "params": count_params(student), "macs": count_macs(student, spec.input_shape),
        "size_bytes": run.model_path(name).stat().st_size,
        "teacher": teacher.source if teacher else ("peers" if mutual else None),
        "test_acc": test_acc, "val_acc": peer_val[chosen],
        "best_epoch": result["best_epoch"], "kept_epoch": result["kept_epoch"], "epochs": len(result["history"]),
        "train_seconds": seconds}
    if mutual:
        entry.update(peer_val_acc=peer_val, exported_peer=chosen,
                     peer_test_acc=[test_acc if p is student else evaluate(p, s.x_test, y_test)[0] for p in peers])
    if controls:
        entry["controls"] = controls  # what this scratch run holds equal to its generation (runs.CONTROLS)
    write_bools(run.correct_path(name), correct.numpy())
    if teacher is not None:
        entry["agreement"] = (mine == teacher.logits(s.x_test).argmax(1)).float().mean().item()
    write_json(run.eval_path(name), entry)
    run.soft_targets_path(name).unlink(missing_ok=True)  # only a resume of this member reads it
    run.update_manifest(lambda m: m["members"].update({name: entry}))
    ctx.on_event({"kind": "stage", "member": name, "status": "done", "test_acc": test_acc})
    return Teacher("edgekd", name, module=student, spec=spec)


def prepare_job(recipe: Recipe, s: Splits, name: str, spec: ArchSpec, teacher: Teacher | None,
                epochs: int | None = None, mutual: bool = False, soft: torch.Tensor | np.ndarray | None = None,
                device: torch.device = torch.device("cpu"),
                cache: Path | None = None) -> tuple[torch.nn.Module, Objective, TrainData, Schedule]:
    """Member `name`'s training job, ready for trainer.train: its freshly seeded model, objective
    (attached to the teacher), data and schedule; model and teacher on `device`. `soft`: the
    teacher's logits on the training rows, when the caller has them already (edgekd tune
    computes them once for all its trials); `cache`: where they are kept when the data is on
    disk (edgekd.distill.soft_targets)."""
    distilled = teacher is not None or mutual
    x, y = training_rows(s, labelled_only=teacher is None)
    data = TrainData(_tensor(x), torch.from_numpy(y), _tensor(s.x_val), torch.from_numpy(s.y_val),
                     augment_scale=augment_scale(spec) if recipe.data.augment else None, augmentation=s.augmentation)
    objective = build_objective(recipe) if distilled else Objective()
    t = recipe.train
    epochs = at_least_steps(t.epochs if epochs is None else epochs, len(x), t.batch_size, t.min_steps)
    teacher_stage = name == "teacher"
    schedule = Schedule(epochs, 0 if teacher_stage else t.finetune_epochs, t.batch_size,
                        (recipe.teacher.lr or t.lr) if teacher_stage else t.lr,
                        t.weight_decay, t.patience, t.seed, select=t.select)

    index = int(name.split("-")[1]) if "-" in name else 0
    torch.manual_seed(t.seed * 101 + index)  # gen-k and baseline-k start from the same weights
    student = build(spec)
    if mutual:  # peers start from different weights: that disagreement is what they teach each other
        student = Cohort([student] + [build(spec) for _ in range(objective.peers - 1)])
    student.to(device)
    if teacher is not None:
        teacher.to(device)  # soft targets and online features on the training device
        objective.attach(student, teacher.module, torch.as_tensor(data.x[:8]).to(device))
        if data.augment_scale is None and not objective.needs_online_teacher:
            # inputs never change: labelled once (a slice per torchrun rank)
            data.soft = soft_targets(teacher, data.x, cache) if soft is None else soft
        else:
            # per batch: augmented inputs, or hooked features that the loss reads
            data.teacher = teacher.forward
    return student, objective, data, schedule


def training_rows(s: Splits, labelled_only: bool = False) -> tuple[np.ndarray | Rows, np.ndarray]:
    """(inputs, labels) a member trains on: the labelled rows, then the transfer set labelled -1
    (only a teacher can label it); joined as a view when the data is on disk."""
    if labelled_only or s.x_transfer is None:
        return s.x_train, s.y_train
    return joined(s.x_train, s.x_transfer), np.concatenate([s.y_train, np.full(len(s.x_transfer), -1, np.int64)])


def _tensor(x: np.ndarray | Rows) -> torch.Tensor | Rows:
    return x if on_disk(x) else torch.from_numpy(x)


def train_controls(ctx: Context, k: int, spec: ArchSpec, transfer_used: bool) -> None:
    """Generation k's architecture trained from scratch on labels alone: for as many optimizer
    steps as gen-k (the same compute: what distillation bought beyond training longer) and
    for the recipe's epochs over the labelled rows (the usual control of a KD paper, fewer
    steps when a transfer set lengthens gen-k's epochs). One run when the two coincide."""
    recipe, s = ctx.recipe, ctx.splits
    earlier = ctx.run.manifest()["members"].get(f"baseline-{k}", {})
    if earlier and "controls" not in earlier:  # a run from before two controls: keep the one it had
        return
    transfer = len(s.x_transfer) if transfer_used and s.x_transfer is not None else 0
    t = recipe.train
    rows = len(s.x_train) + transfer
    steps = max(1, round(at_least_steps(t.epochs, rows, t.batch_size, t.min_steps) * rows / len(s.x_train)))
    short = at_least_steps(t.baseline_epochs or t.epochs, len(s.x_train), t.batch_size, t.min_steps)
    if steps == short:
        train_member(ctx, f"baseline-{k}", spec, None, epochs=steps, controls=["steps", "epochs"])
        return
    train_member(ctx, f"baseline-{k}", spec, None, epochs=steps, controls=["steps"])
    train_member(ctx, f"scratch-{k}", spec, None, epochs=short, controls=["epochs"])
