"""edgekd tune: a real Optuna study in the run, on the validation split; its best recipe is a
TOML that distill takes and that reproduces the tuned generation; a stopped search resumes
with the trials it had; bad input is one sentence and leaves what exists as it was."""

import hashlib
import subprocess
import sys
import textwrap

import pytest

from edgekd.recipe import from_flags, load_toml
from edgekd.runs import Run, read_json
from edgekd.tune import study as studies
from edgekd.tune.space import apply, current, default_space, parse_space

from conftest import TINY, assert_refused

# one generation, no controls, trials of one epoch: the search in seconds
SEARCH = [*TINY, "--chain", "1", "--no-baseline", "--space", "epochs=1"]


def tiny_recipe(*flags):
    sets = [TINY[i + 1] for i in range(0, len(TINY), 2)]
    return from_flags(sets=sets, chain=1, baseline=False, **dict(flags))


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_space_holds_the_recipe_and_a_method_weight():
    recipe = tiny_recipe(("method", ["kd", "attention"]), ("weight", ["attention=50"]), ("temperature", 20.0))
    space = default_space(recipe)
    assert set(space) == {"temperature", "alpha", "lr", "epochs", "weight.attention"}  # kd's weight is alpha's
    for name, value in current(recipe).items():
        assert space[name].low <= value <= space[name].high, name  # trial 0 is the recipe itself
    assert space["weight.attention"].low == 5.0 and space["weight.attention"].high == 500.0
    changed = apply(recipe, {"weight.attention": 7.5, "lr": 0.02, "epochs": 4})
    assert (changed.distill.weights, changed.train.lr, changed.train.epochs) == (("attention=7.5",), 0.02, 4)


@pytest.mark.parametrize("method", ["mse-logits", "dml"])
def test_trial_0_keeps_a_method_s_own_default_weight(method):
    from edgekd.distill.methods import create
    from edgekd.distill.objective import build_objective

    recipe = tiny_recipe(("method", [method]))  # no --weight: the method's default_weight, not 1
    values = current(recipe)
    assert values[f"weight.{method}"] == create(method).default_weight
    assert build_objective(apply(recipe, values)).weights == build_objective(recipe).weights
    space = default_space(recipe)
    assert space[f"weight.{method}"].low == pytest.approx(values[f"weight.{method}"] / 10)


def test_space_option_sets_and_fixes_a_range():
    space = parse_space(tiny_recipe(), ["lr=1e-3:1e-2", "epochs=3"])
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-3, 1e-2, True)
    assert space["epochs"].fixed and space["epochs"].low == 3 and isinstance(space["epochs"].low, int)


@pytest.mark.parametrize("space, words", [
    ("dropout=0:1", ["unknown parameter", "dropout", "temperature, alpha, lr, epochs"]),
    ("weight.kd=1:2", ["unknown parameter", "weight.kd"]),
    ("alpha=0:2", ["alpha=0:2", "distill.alpha must be between 0 and 1"]),
    ("lr=3:1", ["LOW <= HIGH"]),
    ("epochs=1.5", ["whole numbers"]),
    ("lr", ["NAME=LOW:HIGH"]),
])
def test_a_bad_space_is_refused_before_anything_is_written(cli, tmp_path, space, words):
    assert_refused(cli("tune", *TINY, "--space", space, "--out", tmp_path / "t"), *words)
    assert not (tmp_path / "t").exists()


def test_zero_trials_and_other_bad_calls_are_refused(cli, tmp_path):
    assert_refused(cli("tune", *TINY, "--trials", "0", "--out", tmp_path / "t"), "--trials 0", "at least 1")
    assert_refused(cli("tune", "--jobs", "0", "--out", tmp_path / "t"), "--jobs 0")
    assert_refused(cli("tune", "--resume", tmp_path / "t"), "holds no tune study")
    assert_refused(cli("tune", "--resume", tmp_path / "t", "--temperature", "3"), "--resume")
    assert not (tmp_path / "t").exists()


def test_a_study_of_another_recipe_or_space_is_refused_and_kept(cli, tmp_path):
    root = tmp_path / "t"
    recipe = tiny_recipe()
    (root / "tune").mkdir(parents=True)
    studies.create(Run(root).study_path, recipe, parse_space(recipe, ["epochs=1"]), 3)
    before = sha(Run(root).study_path)
    assert_refused(cli("tune", *SEARCH, "--temperature", "4", "--out", root), "another recipe", "--resume")
    assert_refused(cli("tune", *SEARCH, "--space", "alpha=0.5", "--out", root), "another search space")
    assert sha(Run(root).study_path) == before
    assert sorted(p.name for p in root.iterdir()) == [".lock", "tune"]


def test_a_file_that_is_no_study_is_refused(cli, tmp_path):
    root = tmp_path / "t"
    (root / "tune").mkdir(parents=True)
    Run(root).study_path.write_text("not sqlite")
    assert_refused(cli("tune", *SEARCH, "--out", root), "is not an edgekd tune study")
    assert Run(root).study_path.read_text() == "not sqlite"


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgekd.locking import run_lock
    with run_lock(Path(sys.argv[1]), "tune", create=True):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_second_tune_on_the_same_directory_is_refused(cli, tmp_path):
    root = tmp_path / "t"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_refused(cli("tune", *SEARCH, "--out", root), "in use by PID", "edgekd tune")
        assert not Run(root).study_path.exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_small_search_writes_the_study_and_a_recipe_distill_reproduces(cli, tmp_path):
    root = tmp_path / "t"
    code, out, err = cli("tune", *SEARCH, "--trials", "3", "--out", root)
    assert code == 0, err
    run = Run(root)
    summary = read_json(run.trials_path)
    assert [r["number"] for r in summary["trials"]] == [0, 1, 2]
    assert summary["trials"][0]["params"] == summary["default"]["params"]  # trial 0: the recipe's own settings
    assert summary["importance"] is not None or summary["importance_note"]
    manifest = run.manifest()
    best = summary["best"]
    assert manifest["tune"]["best_trial"] == best["number"]
    # the run was trained with the best settings: its gen-1 is the best trial's model, to the bit
    assert manifest["members"]["gen-1"]["val_acc"] == best["value"]
    assert "test_acc" in manifest["members"]["gen-1"] and manifest["status"] == "done"
    tuned = load_toml(run.best_recipe_path)
    assert tuned.to_dict() == manifest["recipe"]
    assert tuned.train.lr == pytest.approx(best["params"]["lr"]) and tuned.train.epochs == 1
    assert tuned.teacher.lr == 3e-3  # the teacher keeps the rate it was trained with
    assert any(p.name == "tune_trials.png" for p in run.plots_dir.iterdir())
    assert "Settings chosen by edgekd tune" in run.report_path("md").read_text()

    code, _, err = cli("distill", "--config", run.best_recipe_path, "--out", tmp_path / "again")
    assert code == 0, err
    again = Run(tmp_path / "again").manifest()["members"]
    assert again["gen-1"]["val_acc"] == best["value"]
    assert again["gen-1"]["test_acc"] == manifest["members"]["gen-1"]["test_acc"]


class Stop(Exception):
    pass


@pytest.mark.slow
def test_a_stopped_search_resumes_with_its_trials_in_parallel_processes(cli, tmp_path):
    from edgekd.tune import tune

    root = tmp_path / "t"

    def stop_after_two(event):
        if event["kind"] == "trial" and event["number"] == 1:
            raise Stop

    recipe = tiny_recipe()
    with pytest.raises(Stop):
        tune(recipe, out=root, space=["epochs=1"], trials=4, on_event=stop_after_two)
    import optuna

    first = {t.number: t.value for t in optuna.load_study(study_name=studies.NAME,
                                                          storage=studies.storage(Run(root).study_path)).trials}
    assert sorted(first) == [0, 1]
    code, _, err = cli("tune", "--resume", root, "--jobs", "2", "--no-train")
    assert code == 0, err
    rows = read_json(Run(root).trials_path)["trials"]
    assert len(rows) >= 4  # two processes may each finish one past the fourth
    assert {r["number"]: r["value"] for r in rows if r["number"] in first} == first  # kept, not redone
    assert len({tuple(sorted(r["params"].items())) for r in rows}) == len(rows)  # the processes searched apart
    assert not any(m.startswith("gen-") for m in Run(root).manifest()["members"])  # --no-train
    assert Run(root).best_recipe_path.is_file()


@pytest.mark.slow
def test_a_killed_search_resumes_with_the_trials_it_finished(cli, tmp_path):
    import os
    import signal
    import time

    import optuna

    root = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "edgekd", "tune", *SEARCH, "--trials", "5", "--no-train",
                             "--quiet", "--out", str(root)], stderr=subprocess.PIPE, text=True)
    finished = []
    try:
        deadline = time.monotonic() + 300
        while len(finished) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if Run(root).study_path.is_file():
                try:
                    study = optuna.load_study(study_name=studies.NAME, storage=studies.storage(Run(root).study_path))
                except Exception:  # created but not yet holding the study
                    continue
                finished = [t for t in study.trials if t.state.is_finished()]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(finished) >= 2, proc.stderr.read()
    kept = {t.number: t.value for t in finished}
    code, _, err = cli("tune", "--resume", root, "--no-train")
    assert code == 0, err
    rows = read_json(Run(root).trials_path)["trials"]
    assert {r["number"]: r["value"] for r in rows if r["number"] in kept} == kept
    # the trial killed mid-way, if any, is marked failed and does not count towards the 5
    assert sum(r["state"] != "fail" or bool(r["error"]) for r in rows) >= 5
