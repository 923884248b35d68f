"""The recipe: defaults, then a TOML file, then --set, then flags. Unknown keys, wrong types and settings that
cannot work together are refused before anything trains."""

from pathlib import Path

import pytest

from conftest import TINY, assert_refused


def test_invalid_toml(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[train\nepochs = 3\n")
    assert_refused(cli("distill", "--config", path), "not valid TOML")


def test_unknown_recipe_key(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[train]\nepohcs = 3\n")
    assert_refused(cli("distill", "--config", path), "unknown key train.epohcs", "valid keys")


def test_unknown_recipe_key_in_set(cli):
    assert_refused(cli("distill", "--set", "chain.lenght=3"), "unknown key chain.lenght")


def test_wrong_type_in_recipe(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[train]\nepochs = "many"\n')
    assert_refused(cli("distill", "--config", path), "train.epochs", "integer")


def test_set_reads_values_as_a_recipe_file_does(tmp_path):
    from edgekd.errors import UserError
    from edgekd.recipe import apply_sets, load_toml

    path = tmp_path / "r.toml"
    path.write_text('[chain]\ndirect = 0\n[bench]\ntargets = ["raspberry-pi-4", "x86-laptop"]\n')
    from_file = load_toml(path)
    from_set = apply_sets(from_file, ['chain.direct=1', 'bench.targets=["raspberry-pi-4", "x86-laptop"]',
                                      'data.spec=npz:my data.npz', 'student.students=cnn:16,cnn:8', 'train.lr=3e-3'])
    assert from_file.chain.direct is False and from_set.chain.direct is True
    assert from_file.bench.targets == from_set.bench.targets == ("raspberry-pi-4", "x86-laptop")
    assert from_set.data.spec == "npz:my data.npz" and from_set.student.students == ("cnn:16", "cnn:8")
    assert from_set.train.lr == 3e-3
    numbers = apply_sets(from_file, ["distill.layers=0", "data.transfer=1e3", 'teacher.spec="a b.pt"'])
    assert numbers.distill.layers == ("0",) and numbers.data.transfer == "1e3" and numbers.teacher.spec == "a b.pt"
    assert apply_sets(from_file, ['data.spec="a"\nb = 1']).data.spec == '"a"\nb = 1'  # one value, not two keys
    for bad in ("chain.direct=2", "chain.direct=1.0"):
        with pytest.raises(UserError, match="chain.direct must be true or false"):
            apply_sets(from_file, [bad])


def test_paths_in_a_recipe_file_are_relative_to_the_file(tmp_path, monkeypatch):
    from edgekd.recipe import load_toml

    project = tmp_path / "project"
    project.mkdir()
    (project / "recipe.toml").write_text(
        '[data]\nspec = "csv:data/d.csv::label"\ntransfer = "npz:more.npz"\n'
        '[teacher]\nspec = "teacher_run"\nensemble = ["b.onnx", "/abs/c.pt"]\n'
        '[distill]\nplugins = "loss.py, more/other.py"\n'
        '[bench]\ntargets = ["raspberry-pi-4", "boards/mine.toml", "~/boards/home.toml"]\n')
    monkeypatch.chdir(tmp_path)  # anywhere but the project
    r = load_toml(Path("project/recipe.toml"))
    p = project.resolve()
    assert r.data.spec == f"csv:{p / 'data/d.csv'}::label" and r.data.transfer == f"npz:{p / 'more.npz'}"
    assert r.teacher.spec == str(p / "teacher_run")  # a bare run-dir name is a path too
    assert r.teacher.ensemble == (str(p / "b.onnx"), "/abs/c.pt")
    assert r.distill.plugins == (str(p / "loss.py"), str(p / "more/other.py"))
    assert r.bench.targets == ("raspberry-pi-4", str(p / "boards/mine.toml"),  # names stay names
                               str(Path("~/boards/home.toml").expanduser()))
    (project / "recipe.toml").write_text('[data]\nspec = "folder:images"\n')
    assert load_toml(Path("project/recipe.toml")).data.spec == f"folder:{p / 'images'}"
    (project / "recipe.toml").write_text('[data]\nspec = "digits"\ntransfer = "0"\n')
    assert (load_toml(Path("project/recipe.toml")).data.spec, load_toml(Path("project/recipe.toml")).data.transfer) \
        == ("digits", "0")


def test_zero_validation_fraction(cli):
    assert_refused(cli("distill", "--set", "data.val_fraction=0"), "val_fraction")


@pytest.mark.parametrize("args,words", [
    (["--set", "distill.temperature=inf"], ["temperature"]),
    (["--set", "train.weight_decay=-1"], ["weight_decay"]),
    (["--width", "-3"], ["student.width"]),
    (["--set", "distill.methods=kd,kd"], ["twice"]),
    (["--set", "export.formats=tflite", "--export"], ["export.formats", "tflite"]),
    (["--students", "cnn:4"], ["lists 1 architecture for 2 generations", "--chain 1"]),
    (["--students", "cnn:4,cnn:2,cnn:1"], ["lists 3 architectures for 2 generations"]),
    (["--students", "cnn:4,cnn:2", "--width", "8"], ["drop --student and --width"]),
    (["--method", "born-again", "--width", "8"], ["keeps the teacher's architecture"]),
    (["--peers", "3"], ["--peers is for --method dml"]),
    (["--threads", "-1"], ["--threads) must not be negative"]),
    (["--ensemble", "mean-probs"], ["--ensemble is for an ensemble"]),
    (["--set", "teacher.primary=true"], ["teacher.primary) is for an ensemble"]),  # as a TOML would set it
    (["--set", "bench.targets=raspberry-pi-9", "--export"], ["unknown target 'raspberry-pi-9'"]),
    (["--target", "raspberry-pi-9", "--no-export"], ["unknown target 'raspberry-pi-9'"]),  # it would be saved
    (["--student", "transformer"], ["unknown model family 'transformer'"]),
    (["--depth", "-1"], ["student.depth"]),
    (["--method", "fitnet", "--hint-layer", "nope"], ["no module 'nope'"]),
])
def test_bad_settings_are_refused_before_any_training(cli, args, words, tmp_path):
    # the run directory is made just before the teacher trains: its absence proves nothing trained
    assert_refused(cli("distill", *TINY, *args, "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


def test_students_set_the_chain_length_next_to_a_recipe_file(cli, tmp_path):
    (tmp_path / "plain.toml").write_text("[train]\nepochs = 1\n")
    # a later check (the hint layer) fails: the student count was accepted as the chain length
    assert_refused(cli("distill", "--config", tmp_path / "plain.toml", "--students", "cnn:4, cnn:2, ", "--method",
                       "fitnet", "--hint-layer", "nope", "--transfer", "0", "--out", tmp_path / "r"),
                   "no module 'nope'")
    (tmp_path / "three.toml").write_text("[chain]\ngenerations = 3\n")
    assert_refused(cli("distill", "--config", tmp_path / "three.toml", "--students", "cnn:4,cnn:2", "--transfer", "0",
                       "--out", tmp_path / "r"), "lists 2 architectures for 3 generations")


@pytest.mark.parametrize("setting,words", [
    ("train.seed=18446744073709551617", ["train.seed must be from 0 to 4,294,967,295"]),  # beyond 2^64
    ("data.seed=-1", ["data.seed must be from 0"]),
    ("student.width=1000000000000", ["student.width must be from 0 to 65,536"]),  # a 36 TB allocation
    ("teacher.depth=1000000", ["teacher.depth must be from 0 to 1,000"]),  # used to hang building it
    ("train.threads=1000000000", ["train.threads must be from 0 to 1,024"]),  # std::bad_alloc after 38 s
    ("train.epochs=1000000000000000000000000000000", ["train.epochs must be from 0 to 100,000"]),
    ("train.batch_size=4611686018427387904", ["train.batch_size must be from 1 to 1,048,576"]),
    ("chain.generations=1", ["would have", "parameters", "at most 500,000,000"]),  # width and depth each in bounds
])
def test_absurd_numbers_are_refused_before_a_run_directory_exists(cli, setting, words, tmp_path):
    wide = ["--students", "mlp:60000x3"] if setting.startswith("chain.") else []
    assert_refused(cli("distill", "--set", setting, *wide, "--transfer", "0", "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text,words", [
    ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", ["nests tables or arrays too deeply"]),  # RecursionError
    ("# " + "x" * (1 << 21) + "\n", ["characters", "at most 1,048,576"]),
])
def test_a_hostile_recipe_file_is_one_sentence(cli, text, words, tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    assert_refused(cli("distill", "--config", path), *words)
    board = tmp_path / "board.toml"
    board.write_text(text)
    assert_refused(cli("targets", "show", board), *words)


def test_a_weight_that_is_not_a_finite_number_and_a_table_for_text_are_refused():
    from edgekd.errors import UserError
    from edgekd.recipe import from_dict, validate

    for raw, words in (({"distill": {"weights": ["kd=nan"]}}, "NAME=NUMBER"),
                       ({"distill": {"weights": ["kd=inf"]}}, "NAME=NUMBER"),
                       ({"data": {"spec": {"a": 1}}}, "must be text")):
        with pytest.raises(UserError, match=words):
            validate(from_dict(raw))
