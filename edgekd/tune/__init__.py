"""`edgekd tune`: search the distillation settings (temperature, alpha, learning rate, epochs,
and the weight of each method but the default one) with Optuna, on the validation split.

    1. the run directory gets its study (Run.study_path, SQLite) and, as `distill` would make
       them, its data, linear reference and teacher (trained or copied once, for every trial);
    2. trials train generation 1 against that teacher (one generation is tuned: the first
       student; the chain then uses its settings all the way down) with a seeded TPE sampler
       and a median pruner fed each epoch's validation accuracy; the recipe's own settings
       are trial 0. Test rows are never looked at;
    3. the best trial's recipe is written as TOML (Run.best_recipe_path) and becomes the run's
       recipe, which `distill --resume` then trains as a normal run: chain, controls, export,
       bench and a report that shows the trials. Test accuracy is measured for that choice only.

The run stays locked throughout (edgekd.locking); a killed search resumes where it stopped
(`edgekd tune --resume DIR`, or the same command again).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekd.errors import UserError
from edgekd.recipe import Recipe, from_dict, validate
from edgekd.records import Events
from edgekd.runs import LINEAR, LOCK, TUNE, Run, default_run_dir, write_bytes, write_json

DEFAULT_TRIALS = 20
POLL_SECONDS = 2.0  # how often the parent reads the study for progress while worker processes search
INSTALL = "edgekd tune needs Optuna: pip install 'edgekd[tune]'"


def tune(recipe: Recipe | None, *, out: Path | None = None, resume: Path | None = None, space: Sequence[str] = (),
         trials: int | None = None, jobs: int = 1, timeout: float | None = None, train: bool = True,
         on_event: Events | None = None, threads: int | None = None, wait: bool = False) -> dict[str, Any]:
    """Search, write the best recipe, then (with `train`) train it as the run. Returns
    {"run": Run, "summary": the study's summary (trials.json), "best_recipe": path,
    "measured": {target: bench result} of the final run}."""
    _check_call(recipe, resume, trials, jobs, timeout, space)
    _require_optuna()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the library reports through on_event only
    on_event = on_event or (lambda event: None)
    root = _root(out, resume)
    from edgekd.locking import run_lock

    with run_lock(root, "tune --resume" if resume is not None else "tune", wait=wait, create=resume is None,
                  on_event=on_event):
        return _tune_locked(recipe, Run(root), resume is not None, space, trials, jobs, timeout, train, on_event,
                            threads)


def from_run(path: Path) -> Recipe:
    """`--from RUN`: the run's recipe, taught by the run's trained teacher (the run directory as
    --teacher), so the search trains no teacher."""
    run = Run.open(path)
    recipe = validate(from_dict(run.manifest()["recipe"], where=f"{run.manifest_path} recipe"))
    teacher = dataclasses.replace(recipe.teacher, spec=str(run.root.resolve()), ensemble=(),
                                  combine=Recipe().teacher.combine, primary=False)
    return dataclasses.replace(recipe, teacher=teacher)


def _check_call(recipe, resume, trials, jobs, timeout, space) -> None:
    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials}: a search needs at least 1 trial")
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: give at least 1 process")
    if timeout is not None and not timeout > 0:
        raise UserError(f"--timeout {timeout:g}: give a positive number of seconds")
    if resume is not None and (recipe is not None or space):
        raise UserError("--resume continues a search with its saved recipe and space; drop the recipe flags "
                        "and --space (--trials, --jobs, --timeout and --threads may change)")


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError(INSTALL) from None


def _root(out: Path | None, resume: Path | None) -> Path:
    if resume is None:
        return out or default_run_dir()
    if not Run(resume).study_path.is_file():
        raise UserError(f"{resume} holds no tune study ({Run(resume).study_path} is missing); start one with "
                        f"`edgekd tune --out {resume}`")
    return Path(resume)


def _tune_locked(asked: Recipe | None, run: Run, resume: bool, space_items: Sequence[str], trials: int | None,
                 jobs: int, timeout: float | None, train: bool, on_event: Events, threads: int | None) -> dict:
    from edgekd.tune import study as studies
    from edgekd.tune.space import parse_space

    if run.study_path.is_file():
        study = studies.load(run.study_path, 0, 1)
        recipe, space, kept_trials = studies.saved(study)
        if not resume:
            studies.check(study, run.study_path, asked, parse_space(asked, space_items))
        if stale := studies.mark_stale(study):
            on_event({"kind": "warning", "text": f"{stale} trial(s) a killed search left running are marked failed"})
    else:
        if run.root.exists() and any(p.name not in (LOCK, TUNE) for p in run.root.iterdir()):
            raise UserError(f"{run.root} exists and is not empty; choose another --out")
        recipe, space, kept_trials = asked or validate(Recipe()), parse_space(asked or Recipe(), space_items), None
        from edgekd.diskspace import writing

        with writing(run.root):
            run.tune_dir.mkdir(parents=True, exist_ok=True)
        studies.create(run.study_path, recipe, space, trials or DEFAULT_TRIALS)
    target = trials or kept_trials or DEFAULT_TRIALS
    study = studies.load(run.study_path, studies.sampler_seed(recipe.train.seed, run.study_path, 0), _startup(target))
    study.set_user_attr("trials", target)

    _teacher_stage(run, recipe, on_event, threads)
    manifest = run.manifest()
    if any(m.startswith("gen-") for m in manifest["members"]) and studies.finished(study) < target:
        raise UserError(f"{run.root} has trained its tuned chain already; to search further, tune into another --out "
                        f"(`edgekd tune --from {run.root}` starts from its recipe and teacher)")
    base = validate(from_dict(manifest.get("tune", {}).get("base") or manifest["recipe"],
                              where=f"{run.manifest_path} recipe"))
    from edgekd.tune.space import current

    # trial 0: the recipe's own settings of the searched parameters
    default = {name: value for name, value in current(base).items() if name in space and not space[name].fixed}
    if studies.finished(study) < target:
        _search(study, run, base, space, default, target, jobs, timeout, on_event, threads)
    summary = studies.summary(study, default)
    write_json(run.trials_path, summary)
    if summary["best"] is None:
        raise UserError(f"no trial of {run.study_path} completed ({summary['counts']['pruned']} pruned, "
                        f"{summary['counts']['fail']} failed); give --timeout more seconds or widen --space")
    best = _best_recipe(base, space, summary["best"]["params"])
    write_bytes(run.best_recipe_path, _toml(best, summary, run).encode())
    record = {"base": base.to_dict(), "best_trial": summary["best"]["number"], "val_acc": summary["best"]["value"],
              "params": summary["best"]["params"], "trials": len(summary["trials"]),
              "default_val_acc": (summary["default"] or {}).get("value"), "tuned_member": "gen-1"}
    run.update_manifest(lambda m: m.update(recipe=best.to_dict(), tune=record))
    on_event({"kind": "message", "text": f"best of {len(summary['trials'])} trials: #{record['best_trial']}, "
                                         f"validation accuracy {record['val_acc']:.4f}; recipe {run.best_recipe_path}"})
    result = {"run": run, "summary": summary, "best_recipe": run.best_recipe_path, "measured": {}}
    if train:
        from edgekd.pipeline import run_pipeline

        result["run"], result["measured"] = run_pipeline(None, resume=run.root, on_event=on_event, threads=threads)
    return result


def _startup(target: int) -> int:
    """TPE's random trials before it models: a quarter of the budget, 3 to 10."""
    return min(10, max(3, target // 4))


def _teacher_stage(run: Run, recipe: Recipe, on_event: Events, threads: int | None) -> None:
    """Data, linear reference and teacher, as `distill` makes them, once for every trial."""
    from edgekd.distill.chain import distill
    from edgekd.distill.objective import build_objective

    if not run.manifest_path.is_file():
        distill(recipe, out=run.root, on_event=on_event, threads=threads, teacher_only=True)
        return
    manifest = run.manifest()
    ready = LINEAR in manifest and ("teacher" in manifest["members"] or build_objective(recipe).mutual)
    if not ready:
        distill(resume=run.root, on_event=on_event, threads=threads, teacher_only=True)


def _search(study, run: Run, base: Recipe, space, default: dict[str, float], target: int, jobs: int,
            timeout: float | None, on_event: Events, threads: int | None) -> None:
    from edgekd.tune import study as studies
    from edgekd.tune import trials as trial_work

    if not study.trials and all(space[n].low <= v <= space[n].high for n, v in default.items()):
        study.enqueue_trial(default)
    on_event({"kind": "message", "text": f"tuning {', '.join(n for n, p in space.items() if not p.fixed)} of gen-1 "
                                         f"on the validation split: {target - studies.finished(study)} trial(s) to go"
                                         f", {jobs} process{'es' * (jobs > 1)}; study {run.study_path}"})
    setup = trial_work.prepare(run.root)
    from optuna.trial import TrialState

    seen = {t.number for t in study.get_trials(deepcopy=False, states=studies.finished_states())}

    def report(_study=None, _trial=None) -> None:
        for t in sorted(study.get_trials(deepcopy=False, states=studies.finished_states()), key=lambda t: t.number):
            if t.number in seen:
                continue
            seen.add(t.number)
            best = max((x.value for x in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
                       default=None)  # a pruned trial's value is its last report: not a result
            value = t.value if t.state == TrialState.COMPLETE else None
            on_event({"kind": "trial", "number": t.number, "state": t.state.name.lower(), "value": value,
                      "best": best, "params": t.params})

    if jobs == 1:
        import torch

        before = torch.get_num_threads()
        if threads or base.train.threads:
            torch.set_num_threads(threads or base.train.threads)
        try:
            trial_work.optimize(study, setup, space, target, timeout, on_event, callbacks=[report])
        finally:
            torch.set_num_threads(before)
        return
    _parallel(study, setup, space, target, jobs, timeout, threads or base.train.threads or os.cpu_count() or 1,
              report)


def _parallel(study, setup, space, target: int, jobs: int, timeout: float | None, cores: int, report) -> None:
    """`jobs` worker processes sharing the SQLite study, each seeded apart, each with its
    share of the cores as torch threads."""
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    from edgekd.tune import study as studies
    from edgekd.tune import trials as trial_work

    shipped = setup.shipped()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(trial_work.work, shipped, space, target,
                               studies.sampler_seed(setup.recipe.train.seed, study, k),
                               _startup(target), timeout, max(1, cores // jobs)) for k in range(jobs)]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
            report()
            for future in done:
                future.result()  # a worker's error (a UserError too) is the command's


def _best_recipe(base: Recipe, space, params: dict[str, float]) -> Recipe:
    """The base recipe with the best trial's settings (and the fixed ones). A built-in teacher
    keeps the learning rate it was trained with (teacher.lr), so the recipe retrains that teacher."""
    from edgekd.tune.space import apply

    values = {name: p.suggest(None, name) for name, p in space.items() if p.fixed}
    values.update(params)
    best = validate(apply(base, values))
    if not base.teacher.spec and not base.teacher.lr and best.train.lr != base.train.lr:
        best = dataclasses.replace(best, teacher=dataclasses.replace(best.teacher, lr=base.train.lr))
    return best


def _toml(recipe: Recipe, summary: dict, run: Run) -> str:
    from edgekd.tomlfile import dumps

    best = summary["best"]
    header = [f"edgekd tune: the best of {len(summary['trials'])} trials in {run.study_path.name}, trial "
              f"{best['number']}, validation accuracy {best['value']:.4f} (gen-1 against the teacher)",
              f"written {time.strftime('%Y-%m-%d %H:%M:%S')}; train it anew: edgekd distill --config "
              f"{run.best_recipe_path}"]
    return dumps(recipe.to_dict(), header)
