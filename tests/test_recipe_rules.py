"""The rules between recipe keys hold for library callers as for the CLI: `recipe.validate`,
`recipe.from_flags` and `run_pipeline` refuse with the sentence `edgekd distill` gives, and
the CLI runs the recipe `from_flags` builds."""

from pathlib import Path

import pytest

from edgekd.distill.methods import create, flag_owner, names
from edgekd.distill.methods.base import options_of
from edgekd.errors import UserError
from edgekd.pipeline import run_pipeline
from edgekd.recipe import Recipe, from_dict, from_flags, validate

ENSEMBLE_ONLY = "is for an ensemble: give --teacher two or more times"
RESUME_ALONE = ("--resume continues a run with its saved recipe; drop the other recipe flags (--threads, --device "
                "and --precision may change)")
THREADS = "train.threads (--threads) must not be negative"

# (distill flags, the same setting as a recipe, the sentence both get)
RECIPE_RULES = [
    (["--set", "teacher.primary=true"], {"teacher": {"primary": True}},
     f"--primary-teacher (teacher.primary) {ENSEMBLE_ONLY}"),
    (["--ensemble", "mean-probs"], {"teacher": {"combine": "mean-probs"}}, f"--ensemble {ENSEMBLE_ONLY}"),
    (["--threads", "-1"], {"train": {"threads": -1}}, THREADS),
    (["--option", "dml.peers=3"], {"distill": {"options": ["dml.peers=3"]}},
     "--option 'dml.peers=3' names method 'dml', which is not among the methods (kd)"),
    (["--weight", "rkd=2"], {"distill": {"weights": ["rkd=2"]}},
     "--weight names rkd, which is not among the methods (kd)"),
]

# (distill flags, the same flags given to from_flags, the sentence both get)
FLAG_RULES = [
    (["--peers", "3"], {"peers": 3}, "--peers is for --method dml (online distillation between peers)"),
    (["--ensemble", "mean-logits"], {"ensemble": "mean-logits"}, f"--ensemble {ENSEMBLE_ONLY}"),  # the default
    (["--resume", "run", "--epochs", "5"], {"resume": "run", "epochs": 5}, RESUME_ALONE),
    (["--resume", "run", "--set", "train.epochs=5"], {"resume": "run", "sets": ["train.epochs=5"]}, RESUME_ALONE),
]

# (distill flags beside --resume RUN, the same call of run_pipeline, the sentence both get)
CALL_RULES = [
    (["--epochs", "5"], {"recipe": from_dict({"train": {"epochs": 5}})}, RESUME_ALONE),
    (["--out", "elsewhere"], {"out": "elsewhere"}, RESUME_ALONE),
    (["--threads", "-1"], {"threads": -1}, THREADS),
]


def _refused_by_cli(cli, *args):
    code, _, err = cli("distill", *args)
    assert code == 2, err
    return err.removeprefix("edgekd: error: ").removesuffix("\n")


@pytest.mark.parametrize("flags,raw,sentence", RECIPE_RULES)
def test_validate_refuses_what_the_cli_refuses(cli, flags, raw, sentence, tmp_path):
    with pytest.raises(UserError) as refused:
        validate(from_dict(raw))
    assert str(refused.value) == sentence == _refused_by_cli(cli, *flags, "--out", tmp_path / "r")


@pytest.mark.parametrize("flags,kwargs,sentence", FLAG_RULES)
def test_from_flags_refuses_what_the_cli_refuses(cli, flags, kwargs, sentence, tmp_path):
    with pytest.raises(UserError) as refused:
        from_flags(**kwargs)
    assert str(refused.value) == sentence == _refused_by_cli(cli, *flags, "--out", tmp_path / "r")


@pytest.mark.parametrize("flags,call,sentence", CALL_RULES)
def test_run_pipeline_refuses_what_the_cli_refuses(cli, flags, call, sentence, tmp_path):
    """Checked before the run is opened: nothing needs to exist at --resume."""
    with pytest.raises(UserError) as refused:
        run_pipeline(**{"recipe": None, **call}, resume=tmp_path / "run")
    assert str(refused.value) == sentence == _refused_by_cli(cli, "--resume", tmp_path / "run", *flags)


def test_a_default_recipe_is_still_a_recipe_on_resume(tmp_path):
    with pytest.raises(UserError, match="drop the other recipe flags"):
        run_pipeline(Recipe(), resume=tmp_path / "run")


def test_an_ensemble_takes_its_settings():
    recipe = from_dict({"teacher": {"spec": "a.pt", "ensemble": ["b.pt"], "combine": "mean-probs", "primary": True}})
    assert validate(recipe) == recipe


def test_students_give_the_chain_length_unless_something_else_does(tmp_path):
    assert from_flags(students="cnn:16,cnn:8").chain.generations == 2
    assert from_flags(students="cnn:16,cnn:8", chain=4).chain.generations == 4
    assert from_flags(students="cnn:16,cnn:8", sets=["chain.generations=5"]).chain.generations == 5
    (tmp_path / "r.toml").write_text("[chain]\ngenerations = 6\n")
    assert from_flags(students="cnn:16,cnn:8", config=tmp_path / "r.toml").chain.generations == 6
    (tmp_path / "s.toml").write_text('[student]\nstudents = ["cnn:8", "cnn:4"]\n')  # only the flag counts
    assert from_flags(config=tmp_path / "s.toml").chain.generations == Recipe().chain.generations


def test_peers_become_the_mutual_methods_option():
    recipe = from_flags(method=["dml"], peers=3, option=["dml.temperature=4"])
    assert recipe.distill.options == ("dml.temperature=4", "dml.peers=3")  # the flag after --option: it wins


def test_resume_takes_threads_alone():
    assert from_flags(resume="run", threads=2) is None


def test_flags_layer_over_the_file_and_sets(tmp_path):
    (tmp_path / "r.toml").write_text("[train]\nepochs = 7\nseed = 1\n[distill]\ntemperature = 3.0\n")
    recipe = from_flags(config=tmp_path / "r.toml", sets=["train.epochs=8", "train.lr=3e-3"], epochs=9,
                        teacher=["a.pt", "b.pt"], plugin=[Path("loss.py")])
    assert (recipe.train.epochs, recipe.train.seed, recipe.train.lr, recipe.distill.temperature) == (9, 1, 3e-3, 3.0)
    assert (recipe.teacher.spec, recipe.teacher.ensemble) == ("a.pt", ("b.pt",))
    assert recipe.distill.plugins == (str(tmp_path / "loss.py"),)  # absolute: the run may start elsewhere


def test_the_cli_runs_the_recipe_from_flags_builds(cli, monkeypatch):
    import edgekd.pipeline

    calls = []

    def run_pipeline(recipe, **kwargs):
        calls.append(recipe)
        raise SystemExit(3)  # stop before any training

    monkeypatch.setattr(edgekd.pipeline, "run_pipeline", run_pipeline)
    assert cli("distill", "--method", "dml", "--peers", "3", "--students", "cnn:8,cnn:4", "--threads", "1")[0] == 3
    assert calls == [from_flags(method=["dml"], peers=3, students="cnn:8,cnn:4", threads=1,
                                sets=["train.min_steps=0"])]  # the cli fixture's floor for tests


@pytest.mark.parametrize("name", names())
def test_a_methods_flags_set_options_it_has(name):
    cls = type(create(name))
    assert set(cls.flag_options) <= set(options_of(cls))
    assert all(flag_owner(option) is cls for option in cls.flag_options)
