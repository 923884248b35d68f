"""The Optuna study of `edgekd tune`, kept in SQLite inside the run (`Run.study_path`), so a
killed search resumes where it stopped and `optuna-dashboard sqlite:///.../study.db` opens it.

The study's user attributes hold what it searches: the recipe (as asked, before the run
resolved it), the search space, the number of trials asked for, and a fingerprint of the
first two; a study is only continued for the same recipe and space.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgekd.errors import UserError
from edgekd.recipe import Recipe, from_dict, validate
from edgekd.tune.space import Space, space_from_dict, space_to_dict

NAME = "edgekd-tune"
DIRECTION = "maximize"  # validation accuracy
# seconds a process waits for another's write to the SQLite file (trials in parallel processes)
SQLITE_TIMEOUT = 60
# deciles of a trial's schedule: the pruner compares trials at the same fraction of their training,
# since a 60-epoch trial at epoch 10 is still at a high learning rate that a 10-epoch one has decayed
STEPS = 10
WARMUP_STEPS = 3  # no pruning in a trial's first 30%
STARTUP_TRIALS = 4  # finished trials before the pruner compares anything


def storage(path: Path):
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}",
                                      engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT}})


def fingerprint(recipe: Recipe) -> str:
    """What a study's trials depend on: the recipe, train.threads aside (it changes no result)."""
    raw = recipe.to_dict()
    raw["train"].pop("threads", None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def create(path: Path, recipe: Recipe, space: Space, trials: int) -> None:
    """A new, empty study at `path` that records what it searches."""
    import optuna

    study = optuna.create_study(study_name=NAME, storage=storage(path), direction=DIRECTION)
    study.set_user_attr("recipe", recipe.to_dict())
    study.set_user_attr("space", space_to_dict(space))
    study.set_user_attr("fingerprint", fingerprint(recipe))
    study.set_user_attr("trials", trials)


def load(path: Path, seed: int, startup: int):
    """The study at `path` with this process's seeded TPE sampler and median pruner."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_STEPS)
    try:
        return optuna.load_study(study_name=NAME, storage=storage(path), sampler=sampler, pruner=pruner)
    except Exception as e:  # a file that is not SQLite, or holds no edgekd study
        raise UserError(f"{path} is not an edgekd tune study ({type(e).__name__}); move it away or choose "
                        "another --out") from None


def sampler_seed(seed: int, study_or_path, worker: int) -> int:
    """The TPE sampler's seed for one process: from train.seed, the trials the study holds and
    the worker's index. A fresh search is the same every time; a resumed one, or a second
    worker, does not replay the random first proposals another process made already."""
    import numpy as np

    study = load(study_or_path, 0, 1) if isinstance(study_or_path, Path) else study_or_path
    held = len(study.get_trials(deepcopy=False))
    return int(np.random.SeedSequence([seed, held, worker]).generate_state(1)[0])


def saved(study) -> tuple[Recipe, Space, int]:
    """The recipe, space and number of trials a study was created with."""
    attrs = study.user_attrs
    try:
        recipe = validate(from_dict(attrs["recipe"], where="the study's recipe"))
        return recipe, space_from_dict(attrs["space"]), int(attrs["trials"])
    except (KeyError, TypeError) as e:
        raise UserError(f"the study has no {e} record; it was not made by edgekd tune") from None


def check(study, path: Path, recipe: Recipe, space: Space) -> None:
    """Refuse to continue a study for another recipe or space: its trials would not compare."""
    resume = f"continue it with `edgekd tune --resume {path.parent.parent}`, or tune into another --out"
    if study.user_attrs.get("fingerprint") != fingerprint(recipe):
        raise UserError(f"{path} holds a study of another recipe (fingerprint {study.user_attrs.get('fingerprint')}, "
                        f"this one {fingerprint(recipe)}); {resume}")
    if space_from_dict(study.user_attrs.get("space", {})) != space:
        raise UserError(f"{path} holds a study over another search space (--space); {resume}")


def mark_stale(study) -> int:
    """Fail the trials a killed process left running: the caller holds the run's lock, so no
    process runs them now (they would otherwise show as running for ever)."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(stale)


def finished(study) -> int:
    """Trials that count towards --trials: completed, pruned, or failed by themselves (a diverged
    learning rate); not those a killed process left behind (mark_stale)."""
    return sum(t.state != _fail() or "error" in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=finished_states()))


def finished_states() -> tuple:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _fail():
    from optuna.trial import TrialState

    return TrialState.FAIL


def summary(study, default: dict[str, float] | None) -> dict[str, Any]:
    """The study as the report reads it (Run.trials_path): every finished trial with its value,
    the best so far, the best trial, and the parameters' importance when there are enough."""
    from optuna.trial import TrialState

    rows, best = [], None
    for t in sorted(study.get_trials(deepcopy=False, states=finished_states()), key=lambda t: t.number):
        value = t.value if t.state == TrialState.COMPLETE else None
        if value is not None and (best is None or value > best):
            best = value
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": value, "last_reported": last,
                     "best_so_far": best, "params": t.params, "epochs": t.user_attrs.get("epochs"),
                     "seconds": t.duration.total_seconds() if t.duration else None,
                     "error": t.user_attrs.get("error")})
    complete = [r for r in rows if r["state"] == "complete"]
    top = max(complete, key=lambda r: (r["value"], -r["number"])) if complete else None
    importance, why = importances(study, len(complete))
    first = rows[0] if rows and default is not None and rows[0]["number"] == 0 else None
    return {"trials": rows, "best": top, "importance": importance, "importance_note": why,
            "default": {"params": default, "value": first["value"] if first else None} if default else None,
            "counts": {state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "fail")}}


def importances(study, complete: int) -> tuple[dict[str, float] | None, str | None]:
    """optuna.importance's fANOVA importances, or None and why not (too few trials, nothing varied)."""
    if complete < 3:
        return None, f"{complete} completed trial{'s' * (complete != 1)}; importance needs at least 3"
    import optuna

    try:
        found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:
        return None, f"optuna could not compute it ({e})"
    if not found:
        return None, "no parameter varied across the completed trials"
    return {k: float(v) for k, v in found.items()}, None
