"""The rules between recipe keys hold for library callers as for the CLI: the same sentence
from `recipe.validate` as from `edgekd distill`, which now only parses flags and calls the library."""

import pytest

from edgekd.errors import UserError
from edgekd.pipeline import run_pipeline
from edgekd.recipe import Recipe, from_dict, validate

# (distill flags, the same setting as a recipe, the sentence both get)
RULES = [
    (["--set", "teacher.primary=true"], {"teacher": {"primary": True}},
     "--primary-teacher (teacher.primary) is for an ensemble: give --teacher two or more times"),
    (["--ensemble", "mean-probs"], {"teacher": {"combine": "mean-probs"}},
     "--ensemble is for an ensemble: give --teacher two or more times"),
    (["--threads", "-1"], {"train": {"threads": -1}}, "train.threads (--threads) must not be negative"),
    (["--option", "dml.peers=3"], {"distill": {"options": ["dml.peers=3"]}},
     "--option 'dml.peers=3' names method 'dml', which is not among the methods (kd)"),
    (["--weight", "rkd=2"], {"distill": {"weights": ["rkd=2"]}},
     "--weight names rkd, which is not among the methods (kd)"),
]


@pytest.mark.parametrize("flags,raw,sentence", RULES)
def test_validate_refuses_what_the_cli_refuses(cli, flags, raw, sentence, tmp_path):
    with pytest.raises(UserError) as refused:
        validate(from_dict(raw))
    assert str(refused.value) == sentence
    code, out, err = cli("distill", *flags, "--out", tmp_path / "r")
    assert (code, err) == (2, f"edgekd: error: {sentence}\n")


def test_an_ensemble_takes_its_settings():
    recipe = from_dict({"teacher": {"spec": "a.pt", "ensemble": ["b.pt"], "combine": "mean-probs", "primary": True}})
    assert validate(recipe) == recipe


RESUME_ALONE = "--resume continues a run with its saved recipe; drop the other recipe flags (--threads may change)"

# (distill flags beside --resume RUN, the same call of run_pipeline, the sentence both get)
CALLS = [
    (["--epochs", "5"], {"recipe": from_dict({"train": {"epochs": 5}})}, RESUME_ALONE),
    (["--out", "elsewhere"], {"out": "elsewhere"}, RESUME_ALONE),
    (["--threads", "-1"], {"threads": -1}, "train.threads (--threads) must not be negative"),
]


@pytest.mark.parametrize("flags,call,sentence", CALLS)
def test_run_pipeline_refuses_what_the_cli_refuses(cli, flags, call, sentence, tmp_path):
    """Checked before the run is opened: nothing needs to exist at --resume."""
    with pytest.raises(UserError) as refused:
        run_pipeline(**{"recipe": None, **call}, resume=tmp_path / "run")
    assert str(refused.value) == sentence
    code, out, err = cli("distill", "--resume", tmp_path / "run", *flags)
    assert (code, err) == (2, f"edgekd: error: {sentence}\n")


def test_a_default_recipe_is_still_a_recipe_on_resume(tmp_path):
    with pytest.raises(UserError, match="drop the other recipe flags"):
        run_pipeline(Recipe(), resume=tmp_path / "run")
