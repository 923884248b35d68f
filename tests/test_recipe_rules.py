"""The rules between recipe keys hold for library callers as for the CLI: the same sentence
from `recipe.validate` as from `edgekd distill`, which now only parses flags and calls the library."""

import pytest

from edgekd.errors import UserError
from edgekd.recipe import from_dict, validate

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
