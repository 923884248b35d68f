"""Generated recipes and target profiles (Hypothesis): random sections, keys and values of every TOML
type and size (huge, negative, NaN, deeply nested, unknown keys, wrong types), written as TOML files
and read the way edgekd reads them. Each is valid, or refused with a UserError of one non-empty
sentence: never another exception."""

import copy
import json
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgekd import recipe as recipes
from edgekd import targets
from edgekd.errors import UserError

from conftest import assert_refused

FAST = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _key(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string is JSON's, for the characters generated here


def toml_value(v) -> str:
    """One value in TOML's inline syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _key(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_text(table: dict) -> str:
    """Top-level scalars first, then one [section] per table (TOML's order rule)."""
    lines = [f"{_key(k)} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for name, keys in table.items():
        if isinstance(keys, dict):
            lines.append(f"[{_key(name)}]")
            lines += [f"{_key(k)} = {toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
NUMBERS = st.one_of(
    st.integers(-(2 ** 63), 2 ** 63 - 1), st.sampled_from([0, 1, -1, 2 ** 31, 2 ** 32, 10 ** 12, -(10 ** 18)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0, 0.5, math.inf, -math.inf, math.nan, 10 ** 400, -(10 ** 30)]))
SCALARS = st.one_of(NUMBERS, st.booleans(), TEXT, st.sampled_from(["", "kd", "cnn:16", "a,b", "1", "true", "0"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=12)


def _known(section_type) -> list[str]:
    return [f for f in section_type.__dataclass_fields__]


SECTION_KEYS = {name: _known(type(factory())) for name, factory in recipes.SECTIONS.items()}


@st.composite
def recipe_tables(draw) -> dict:
    """Mostly known sections and keys, so values reach the coercion and validation; some unknown."""
    table = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.one_of(st.sampled_from(sorted(SECTION_KEYS)), TEXT))
        keys = SECTION_KEYS.get(section, [])
        entries = {}
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(keys)) if keys and draw(st.integers(0, 4)) else draw(TEXT)
            entries[key] = draw(VALUES)
        table[section] = entries if draw(st.integers(0, 9)) else draw(VALUES)  # now and then not a table
    return table


def _one_sentence(e: UserError) -> None:
    text = str(e)
    assert text.strip() and "\n" not in text, repr(text)


def _read_recipe(path: Path) -> None:
    try:
        recipes.validate(recipes.load_toml(path))
    except UserError as e:
        _one_sentence(e)


@FAST
@given(table=recipe_tables())
def test_generated_recipes_are_valid_or_one_sentence(tmp_path, table):
    path = tmp_path / "r.toml"
    path.write_text(toml_text(table), encoding="utf-8")
    _read_recipe(path)
    try:  # and the same table handed to the library directly, as a caller of from_dict would
        recipes.validate(recipes.from_dict(tomllib.loads(path.read_text(encoding="utf-8"))))
    except UserError as e:
        _one_sentence(e)


@FAST
@given(field=st.sampled_from([(s, k) for s, keys in SECTION_KEYS.items() for k in keys]),
       value=st.one_of(NUMBERS, SCALARS, VALUES))
def test_any_value_for_each_known_key_is_valid_or_one_sentence(tmp_path, field, value):
    """One key at a time: in a whole generated table the first bad key hides the others."""
    section, key = field
    path = tmp_path / "r.toml"
    path.write_text(toml_text({section: {key: value}}), encoding="utf-8")
    _read_recipe(path)


@FAST
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.integers(1, 3000).map(lambda n: "a = " + "[" * n + "]" * n),
                      st.integers(1, 3000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n),
                      st.integers(4300, 6000).map(lambda n: "[train]\nepochs = " + "9" * n)))
def test_any_text_as_a_recipe_file_is_read_or_one_sentence(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _read_recipe(path)


VALID_PROFILE = tomllib.loads((targets.builtin_dir() / "raspberry-pi-4.toml").read_text())
PROFILE_VALUES = st.one_of(VALUES, st.sampled_from([[], ["neon"], ["torch", "ncnn"], {}, {"a": 1.0}, {"cores": "x"}]))


@st.composite
def profiles(draw) -> dict:
    """A valid profile with a few fields removed, replaced or added."""
    raw = json.loads(json.dumps(VALID_PROFILE))
    raw["name"] = "my-board"
    raw.pop("aliases")
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["drop", "set", "add", "source"]))
        field = draw(st.sampled_from(sorted(targets.FIELDS)))
        if action == "drop":
            raw.pop(field, None)
        elif action == "set":
            raw[field] = copy.deepcopy(draw(PROFILE_VALUES))  # sampled_from hands out one shared object
        elif action == "add":
            raw[draw(TEXT)] = copy.deepcopy(draw(PROFILE_VALUES))
        elif isinstance(raw.get("sources"), dict):
            raw["sources"][field] = copy.deepcopy(draw(PROFILE_VALUES))
    return raw


@FAST
@given(raw=profiles())
def test_generated_target_profiles_are_valid_or_one_sentence(tmp_path, raw):
    path = tmp_path / "board.toml"
    path.write_text(toml_text(raw), encoding="utf-8")
    try:
        target = targets.load_target(str(path))
    except UserError as e:
        _one_sentence(e)
        return
    json.dumps(target.to_dict(), allow_nan=False)  # a profile read is one the run can record


@pytest.mark.slow
@settings(max_examples=5, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=recipe_tables())
def test_bad_generated_recipes_stop_distill_before_the_run_directory(cli, tmp_path, table):
    path = tmp_path / "r.toml"
    path.write_text(toml_text(table), encoding="utf-8")
    try:
        recipes.validate(recipes.load_toml(path))
        assume(False)  # a valid recipe would train: only the refused ones are run through the CLI
    except UserError:
        pass
    out = tmp_path / "run"
    assert_refused(cli("distill", "--config", path, "--out", out))
    assert not out.exists()
