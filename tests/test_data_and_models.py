import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.data import load_splits, load_transfer
from edgekd.errors import UserError
from edgekd.models import ArchSpec, build, count_macs, count_params, families, load_model, save_model


def test_mnist1d_builtin_is_fixed_and_offline(tmp_path):
    a, b = load_splits("mnist1d"), load_splits("mnist1d")
    assert a.input_shape == (40,) and a.classes == 10
    assert len(a.x_train) + len(a.x_val) == 4000 and len(a.x_test) == 1000
    assert a.fingerprint() == b.fingerprint()
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or written into the working directory


def test_digits_builtin():
    s = load_splits("digits")
    assert s.input_shape == (1, 8, 8) and s.classes == 10
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 1797


def test_transfer_generated_and_from_npz(tmp_path):
    s = load_transfer(load_splits("mnist1d"), "500")
    assert s.x_transfer.shape == (500, 40)
    assert not np.isin(s.x_transfer[:, 0], s.x_train[:, 0]).all()  # another seed: other samples
    np.savez(tmp_path / "u.npz", x=np.zeros((7, 40), np.float32))
    assert load_transfer(load_splits("mnist1d"), f"npz:{tmp_path / 'u.npz'}").x_transfer.shape == (7, 40)
    np.savez(tmp_path / "bad.npz", x=np.zeros((7, 41), np.float32))
    with pytest.raises(UserError, match="sample shape"):
        load_transfer(load_splits("mnist1d"), f"npz:{tmp_path / 'bad.npz'}")


def test_npz_with_given_splits(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(50, 6)), y=np.arange(50) % 4,
             x_test=rng.normal(size=(10, 6)), y_test=np.arange(10) % 4)
    s = load_splits(f"npz:{tmp_path / 'd.npz'}")
    assert s.classes == 4 and len(s.x_test) == 10 and s.input_shape == (6,)


def test_csv(tmp_path):
    rows = ["a,b,c,label"] + [f"{i},{i * 2},{-i},{i % 3}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    s = load_splits(f"csv:{tmp_path / 'd.csv'}")
    assert s.input_shape == (3,) and s.classes == 3
    (tmp_path / "bad.csv").write_text("a,label\nx,1\n")
    with pytest.raises(UserError, match="numeric"):
        load_splits(f"csv:{tmp_path / 'bad.csv'}")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    s = load_splits(f"folder:{tmp_path}")
    assert s.input_shape == (3, 10, 12) and s.classes == 2


def test_image_folder_shape_does_not_depend_on_which_file_sorts_first(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):  # mostly 8x8 grey; 16-bit, so 8-bit conversion would clip it
            Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16)).save(tmp_path / cls / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)).save(tmp_path / "a" / "+first.png")  # one odd file
    s = load_splits(f"folder:{tmp_path}")
    assert s.input_shape == (3, 8, 8)  # the common size; RGB because one image has colour
    x = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert 0 <= x.min() and x.max() <= 1 and 0.3 < x.mean() < 0.7  # 16-bit values kept their range, not clipped at 1


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("shape", [(40,), (1, 8, 8)])
def test_every_family_returns_logits_and_round_trips(family, shape, tmp_path):
    spec = ArchSpec(family, 8, 2, shape, 5, mean=0.5, std=2.0)
    model = build(spec).eval()
    x = torch.randn(3, *shape)
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 5)
    assert count_params(model) > 0 and count_macs(model, shape) > 0
    save_model(model, spec, tmp_path / "m.pt")
    loaded, spec2 = load_model(tmp_path / "m.pt")
    assert spec2 == spec
    torch.testing.assert_close(loaded(x), out)


def test_width_shrinks_params():
    p = [count_params(build(ArchSpec("cnn", w, 4, (40,), 10))) for w in (32, 16, 8)]
    assert p[0] > 3 * p[1] > 9 * p[2]


def test_augmentation_keeps_shape_and_changes_values():
    from edgekd.data.augment import AUGMENTATIONS, augment

    g = torch.Generator().manual_seed(0)
    for kind, (rank, _) in AUGMENTATIONS.items():
        x = torch.randn(64, 40) if rank in (2, None) else torch.randn(64, 3, 8, 8)
        y = augment(x, g, 1.0, kind)
        assert y.shape == x.shape and not torch.equal(x, y), kind


def test_augmentation_keeps_what_carries_the_label():
    from edgekd.data.augment import augment

    g = torch.Generator().manual_seed(0)
    features = torch.randn(256, 8) * 10
    moved = augment(features, g, 10.0, "noise")  # csv/npz columns stay in place: noise only
    assert (moved - features).abs().max() < 3.0
    assert (augment(features, g, 10.0, "shift+noise") - features).abs().max() > 3.0  # a signal shifts
    digit = torch.zeros(512, 1, 8, 8)
    digit[:, :, :, :2] = 1.0  # a bar on the left edge: a flip would move it right
    cropped = augment(digit, g, 1.0, "crop")
    assert cropped[..., 5:].sum() == 0  # crops shift by at most one pixel; nothing is mirrored
    assert (augment(digit, g, 1.0, "flip+crop")[..., 5:].sum(dim=(1, 2, 3)) > 0).any()
    assert torch.equal(augment(features, torch.Generator().manual_seed(1), 10.0, "crop"),
                       augment(features, torch.Generator().manual_seed(1), 10.0, "noise"))  # wrong rank: noise


def test_each_data_source_names_its_augmentation(tmp_path):
    import numpy as np

    from edgekd.data import load_splits

    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(40, 1, 4, 4)), y=np.arange(40) % 2)
    kinds = {spec: load_splits(spec).augmentation for spec in ("mnist1d", "digits", f"csv:{tmp_path / 't.csv'}",
                                                                f"npz:{tmp_path / 'd.npz'}")}
    assert list(kinds.values()) == ["shift+noise", "crop", "noise", "noise"]


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


def test_input_statistics_of_huge_but_finite_values():
    """float32 data near 1e20 is valid, but its square overflows float32: the standardization
    the models carry must still be finite."""
    from edgekd.data import Splits
    from edgekd.distill.students import input_stats as _input_stats

    x = (np.random.default_rng(0).normal(size=(64, 8)) * 1e20).astype(np.float32)
    y = np.arange(64) % 2
    mean, std = _input_stats(Splits("big", x, y, x, y, x, y, classes=2), "auto")
    assert np.isfinite(mean) and np.isfinite(std) and 0.5e20 < std < 2e20
    mean, std = _input_stats(Splits("big", x, y, x, y, x, y, classes=2), "feature")  # per column, as for csv
    assert np.isfinite(mean).all() and len(std) == 8 and all(0.5e20 < s < 2e20 for s in std)


def test_table_columns_on_different_scales_are_standardized_one_by_one(cli, tmp_path):
    # the label lives in a column of scale 1e-3 next to a noise column of scale 1e4: one global
    # std would shrink the signal to ~1e-7 and leave the teacher guessing
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 800)
    signal = (2.0 * y - 1 + 0.3 * rng.standard_normal(800)) * 1e-3
    table = np.column_stack([signal, 1e4 * rng.standard_normal(800), rng.standard_normal(800), np.full(800, 5.0), y])
    path = tmp_path / "t.csv"
    np.savetxt(path, table, delimiter=",", header="small,huge,plain,constant,label", comments="")
    accuracy = {}
    for how, extra in (("global", ["--no-export"]), ("auto", ["--augment", "--set", "bench.enabled=false"])):
        code, out, err = cli("distill", "--data", f"csv:{path}", "--chain", "1", "--teacher-epochs", "5", "--epochs", "2",
                             "--set", "teacher.arch=mlp", "--set", "teacher.width=16", "--set", f"data.standardize={how}",
                             "--no-baseline", *extra, "--out", tmp_path / how, "--json")
        assert code == 0, err
        manifest = json.loads((tmp_path / how / "manifest.json").read_text())
        accuracy[how] = manifest["members"]["teacher"]["test_acc"]
    assert accuracy["auto"] >= 0.95 and accuracy["global"] < 0.8, accuracy
    spec = manifest["students"][0]
    assert len(spec["mean"]) == len(spec["std"]) == 4 and spec["std"][3] == 1.0  # constant column: not divided by 0
    assert manifest["data"]["augmentation"] == "noise"  # scaled per column too
    # every artifact verifies, int8 included: quantization starts after the standardization,
    # whose columns one uint8 scale could not hold
    assert {a["artifact"]: a["passed"] for a in json.loads(out)["artifacts"]} == dict.fromkeys(
        ["onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-fp16", "openvino-int8"], True)
    model, loaded = load_model(tmp_path / "auto" / "gen-1" / "model.pt")
    assert loaded.std == tuple(spec["std"])


def test_feature_standardization_needs_a_table(cli, tmp_path):
    code, out, err = cli("distill", "--data", "digits", "--set", "data.standardize=feature", "--no-export")
    assert code == 2 and "standardizes the columns of (N, F) inputs" in err and "Traceback" not in err
    assert not Path("runs").exists()


def test_resuming_a_run_from_before_per_column_standardization_keeps_one_mean(cli, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3)) * [1.0, 100.0, 0.01]
    path = tmp_path / "t.csv"
    np.savetxt(path, np.column_stack([x, (x[:, 0] > 0).astype(int)]), delimiter=",", header="a,b,c,label", comments="")
    args = ["--data", f"csv:{path}", "--chain", "1", "--teacher-epochs", "1", "--epochs", "1", "--set", "teacher.width=8",
            "--no-baseline", "--no-export", "--out", tmp_path / "r"]
    code, out, err = cli("distill", *args, "--set", "data.standardize=global")
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    del manifest["recipe"]["data"]["standardize"]          # as written before the key existed,
    manifest["members"], manifest["status"] = {}, "running"  # interrupted before the teacher finished
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    for name in ("teacher/eval.json", "teacher/model.pt", "gen-1/eval.json"):
        (tmp_path / "r" / name).unlink()
    code, out, err = cli("distill", "--resume", tmp_path / "r")
    assert code == 0, err
    for member in ("teacher", "gen-1"):
        assert isinstance(load_model(tmp_path / "r" / member / "model.pt")[1].std, float)  # as the run began
