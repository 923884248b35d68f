"""One trial of `edgekd tune`: generation 1 trained against the run's teacher with the trial's
settings, scored on the validation split. The test rows are not even handed to a trial.

A trial trains gen-1 as the chain would (members.prepare_job: the same initial weights, data,
objective and schedule) but writes nothing: no checkpoint, no model. Its validation accuracy
after each epoch goes to the pruner, at the decile of its schedule that the epoch ends.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekd.data import Splits, load_run_splits, load_transfer
from edgekd.distill.members import prepare_job, training_rows
from edgekd.distill.objective import build_objective
from edgekd.distill.soft_targets import soft_targets
from edgekd.distill.teacher_stage import open_teacher
from edgekd.distill.teachers import Teacher
from edgekd.distill.trainer import train
from edgekd.errors import UserError
from edgekd.models import ArchSpec, load_model
from edgekd.recipe import Recipe, from_dict, validate
from edgekd.records import Events
from edgekd.runs import Run
from edgekd.tune import study as studies
from edgekd.tune.space import Space, apply

MEMBER = "gen-1"  # the member a trial trains: the first student, against the teacher


@dataclass
class Setup:
    """What every trial reads, prepared once per process: the data, the teacher and its soft
    targets on the training rows (computed once, not per trial)."""

    root: Path
    recipe: Recipe                 # the run's recipe, resolved; each trial varies it
    splits: Splits                 # train, val and transfer rows; no test rows
    spec: ArchSpec                 # generation 1's architecture
    teacher: Teacher | None        # None: peers teach each other (dml)
    # (N, C) teacher logits on train + transfer rows (float16 on disk for data on disk); None when it runs online
    soft: torch.Tensor | np.ndarray | None
    mutual: bool

    def shipped(self) -> Setup:
        """For a worker process: the arrays travel, the teacher is loaded there from the run
        (a TorchScript module or an ONNX session does not pickle)."""
        return dataclasses.replace(self, teacher=None)


def prepare(root: Path) -> Setup:
    """Load a run's data (its test rows dropped), teacher and soft targets."""
    run = Run.open(root)
    manifest = run.manifest()
    recipe = validate(from_dict(manifest["recipe"], where=f"{run.manifest_path} recipe"))
    labelled = load_run_splits(manifest, run.root)
    plan = build_objective(recipe)
    splits = load_transfer(labelled, "0" if plan.mutual else recipe.data.transfer, recipe.data.load)
    empty = np.empty((0, *splits.input_shape), dtype=splits.x_test.dtype)
    splits = dataclasses.replace(splits, x_test=empty, y_test=np.empty(0, dtype=splits.y_test.dtype))
    spec = ArchSpec.from_dict(manifest["students"][0])
    setup = Setup(run.root, recipe, splits, spec, None, None, plan.mutual)
    setup.teacher = teacher_of(setup)
    if setup.teacher is not None and not recipe.data.augment and not plan.needs_online_teacher:
        x, _ = training_rows(splits)
        setup.soft = soft_targets(setup.teacher, x, run.tune_dir / "soft_targets.npy")
    return setup


def teacher_of(setup: Setup) -> Teacher | None:
    """The run's teacher: the built-in one it trained, or its copy of the user's."""
    if setup.mutual:
        return None
    run = Run.open(setup.root)
    if not setup.recipe.teacher.spec:
        module, spec = load_model(run.model_path("teacher"))
        return Teacher("edgekd", "teacher", module=module, spec=spec)
    return open_teacher(setup.recipe, setup.splits, build_objective(setup.recipe), run)


def step_of(epoch: int, epochs: int) -> int:
    """The decile of its schedule that a trial's epoch ends (0: not yet a tenth done)."""
    return epoch * studies.STEPS // epochs


def objective(setup: Setup, space: Space, on_event: Events | None = None):
    """The function Optuna maximises: a trial's validation accuracy, at the epoch the recipe's
    train.select keeps."""
    import optuna

    def run_trial(trial) -> float:
        params = {name: p.suggest(trial, name) for name, p in space.items()}
        recipe = validate(apply(setup.recipe, params))
        student, goal, data, schedule = prepare_job(recipe, setup.splits, MEMBER, setup.spec, setup.teacher,
                                                    mutual=setup.mutual, soft=setup.soft)
        trial.set_user_attr("epochs", schedule.epochs + schedule.finetune_epochs)
        member = f"trial-{trial.number}"
        if on_event:
            on_event({"kind": "stage", "member": member, "status": "start",
                      "epochs": schedule.epochs + schedule.finetune_epochs, "arch": setup.spec.label(),
                      "teacher": "teacher" if setup.teacher else None})

        def on_epoch(row: dict[str, Any]) -> None:
            if on_event:
                on_event({"kind": "epoch", "member": member, **row})
            step = step_of(row["epoch"], row["epochs"])
            if step and step not in reported:
                reported.add(step)
                trial.report(row["val_acc"], step)
                if row["epoch"] < row["epochs"] and trial.should_prune():  # a finished trial is kept whole
                    raise optuna.TrialPruned(f"pruned at epoch {row['epoch']} of {row['epochs']}")

        reported: set[int] = set()
        try:
            result = train(student, goal, data, schedule, on_epoch=on_epoch)
        except UserError as e:  # a diverged learning rate: this trial fails, the search goes on
            trial.set_user_attr("error", str(e))
            raise
        finally:
            goal.detach()
        value = result["val_acc"]
        if not math.isfinite(value):
            raise UserError(f"trial {trial.number} ended with validation accuracy {value}")
        return value

    return run_trial


def work(setup: Setup, space: Space, target: int, seed: int, startup: int, timeout: float | None,
         threads: int) -> None:
    """A worker process of `--jobs`: trials from the shared study until it holds `target`
    finished ones (or `timeout` seconds pass)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(threads)
    setup.teacher = teacher_of(setup)
    study = studies.load(Run(setup.root).study_path, seed, startup)
    optimize(study, setup, space, target, timeout)


def optimize(study, setup: Setup, space: Space, target: int, timeout: float | None,
             on_event: Events | None = None, callbacks: list | None = None) -> None:
    """Trials until the study holds `target` that count (studies.finished); parallel processes
    each stop once the shared study does."""
    left = target - studies.finished(study)
    if left <= 0:
        return

    def stop(study, _trial) -> None:
        if studies.finished(study) >= target:
            study.stop()

    study.optimize(objective(setup, space, on_event), n_trials=left, timeout=timeout, catch=(UserError,),
                   callbacks=[stop, *(callbacks or [])])
