"""Data: the built-in sets, the transfer set, npz, csv and image folders, augmentation and the input
standardization models carry. Bad user data is refused in one sentence naming what and where; valid data is
unchanged."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgekd.data import load_splits, load_transfer
from edgekd.errors import UserError
from edgekd.models import load_model

from conftest import TINY, assert_refused, write_npz


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


@pytest.mark.slow
def test_other_data_needs_no_transfer_flag(cli, tmp_path):
    code, out, err = cli("distill", "--data", "digits", "--chain", "1", "--teacher-epochs", "2", "--epochs", "1",
                         "--set", "teacher.width=8", "--no-baseline", "--no-export", "--out", tmp_path / "d", "--json")
    assert code == 0, err
    data = json.loads((tmp_path / "d" / "manifest.json").read_text())["data"]
    assert data["transfer"] == 0 and data["augmentation"] == "none"  # nothing augments without --augment


def test_missing_data_file(cli, tmp_path):
    assert_refused(cli("distill", "--data", "npz:nope.npz", "--out", tmp_path / "r"), "does not exist")


def test_unknown_data_spec(cli):
    assert_refused(cli("distill", "--data", "imagenet"), "unknown data spec", "mnist1d")


def _refused(cli, spec, tmp_path, *words):
    code, out, err = cli("distill", "--data", spec, *TINY, "--transfer", "0", "--out", tmp_path / "r")
    assert code == 2, (code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "r").exists()


def _csv(path, header, rows, **kw):
    path.write_text("\n".join(([header] if header else []) + rows) + "\n", **kw)
    return f"csv:{path}"


def _rows(n=40, classes=3):  # features a, b; label last
    return [f"{i},{i * 2 % 7},{i % classes}" for i in range(n)]


# Golden fingerprints, computed with the loaders before these checks existed: valid data must give the same arrays.
GOLDEN = {"csv": "17de02d4cb854d99", "npz": "6200cc72f3080b6e", "npz_given": "edf509dfc1c495a6",
          "folder": "5d6a2b7638bc8c6b"}


def _valid(tmp_path):
    """One valid data set per loader, built from integer arithmetic so the bytes never change."""
    x = (np.arange(80 * 6).reshape(80, 6) % 13 / 13).astype(np.float32)
    np.savez(tmp_path / "v.npz", x=x, y=np.arange(80) % 4)
    np.savez(tmp_path / "g.npz", x=x[:60], y=np.arange(60) % 4, x_test=x[60:], y_test=np.arange(20) % 4)
    for k, cls in enumerate(("cat", "dog")):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(10):
            pixels = (np.arange(6 * 5 * 3).reshape(6, 5, 3) * (i + 1) + 40 * k) % 256
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    return {"csv": _csv(tmp_path / "v.csv", "a,label,b", [f"{i % 5},{i % 3},{i / 4}" for i in range(50)]),
            "npz": f"npz:{tmp_path / 'v.npz'}", "npz_given": f"npz:{tmp_path / 'g.npz'}",
            "folder": f"folder:{tmp_path / 'img'}"}


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_valid_data_gives_the_same_arrays_as_before(kind, tmp_path):
    s = load_splits(_valid(tmp_path)[kind])
    assert s.fingerprint() == GOLDEN[kind]


# --- npz --------------------------------------------------------------------------------------------------------------


def test_npz_with_given_splits(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(50, 6)), y=np.arange(50) % 4,
             x_test=rng.normal(size=(10, 6)), y_test=np.arange(10) % 4)
    s = load_splits(f"npz:{tmp_path / 'd.npz'}")
    assert s.classes == 4 and len(s.x_test) == 10 and s.input_shape == (6,)


@pytest.fixture
def bad(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 10)).astype(np.float32)
    y = np.arange(60) % 3
    nan = x.copy()
    nan[5, 2] = np.nan
    return {
        "nan": write_npz(tmp_path / "nan.npz", x=nan, y=y),
        "inf": write_npz(tmp_path / "inf.npz", x=np.where(x > 2, np.inf, x), y=y),
        "empty": write_npz(tmp_path / "empty.npz", x=np.zeros((0, 10), np.float32), y=np.zeros(0)),
        "nolabels": write_npz(tmp_path / "nolabels.npz", x=x),
        "mismatch": write_npz(tmp_path / "mismatch.npz", x=x, y=y[:50]),
        "nhwc": write_npz(tmp_path / "nhwc.npz", x=np.zeros((60, 12, 12, 3), np.float32), y=y),
        "grey2d": write_npz(tmp_path / "grey2d.npz", x=np.zeros((60, 12, 12), np.float32), y=y),
    }


@pytest.mark.parametrize("case,words", [
    ("nan", ["NaN"]), ("inf", ["infinite"]), ("empty", ["no samples"]),
    ("nolabels", ["'y'"]), ("mismatch", ["labels"]),
    ("nhwc", ["channels last", "x.transpose(0, 3, 1, 2)"]), ("grey2d", ["(N, 1, H, W)", "x[:, None]"])])
def test_bad_data(cli, bad, case, words, tmp_path):
    assert_refused(cli("distill", "--data", bad[case], *TINY, "--transfer", "0", "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


X = np.random.default_rng(0).normal(size=(60, 3))


@pytest.mark.parametrize("arrays,words", [
    ({"x": X, "y": np.full(60, 5)}, ["single class (5)"]),
    ({"x": X, "y": np.arange(60) % 3 * 10}, ["class indices 0..2", "found 0, 10, 20"]),
    ({"x": X, "y": np.arange(60) % 3 + 1}, ["class indices 0..2", "found 1, 2, 3"]),
    ({"x": X, "y": np.where(np.arange(60) % 2, 1e20, 0.0)}, ["class indices 0..K-1", "found 1e+20"]),  # not wrapped
    ({"x": X, "y": np.arange(60) % 3, "x_test": X[:10], "y_test": np.arange(10) % 5}, ["y_test", "(3, 4)", "0..2"]),
    ({"x": X, "y": np.arange(60) % 3, "x_val": X[:6], "y_val": np.full(6, 7)}, ["y_val", "(7)"]),
    ({"x": X, "y": np.arange(60) % 3, "y_test": np.arange(10) % 3}, ["y_test has no matching x_test"]),
    ({"x": X[:4], "y": np.arange(4) % 2}, ["too few samples (4)"]),
    ({"x": np.arange(300.0), "y": np.arange(300) % 2}, ["one row per sample", "at least 2-D", "(300,)"]),
    ({"x": np.zeros((60, 0)), "y": np.arange(60) % 2}, ["no features"]),
])
def test_bad_npz_is_refused(cli, tmp_path, arrays, words):
    _refused(cli, write_npz(tmp_path / "d.npz", **arrays), tmp_path, *words)


def test_a_text_file_named_npz(cli, tmp_path):
    (tmp_path / "d.npz").write_text("x,y\n1,0\n")  # np.load alone would call this pickled data
    _refused(cli, f"npz:{tmp_path / 'd.npz'}", tmp_path, "is not an .npz file")


@pytest.mark.filterwarnings("error")  # numpy's ComplexWarning must not be the only sign
def test_complex_inputs_are_refused(tmp_path):
    with pytest.raises(UserError, match="complex"):
        load_splits(write_npz(tmp_path / "c.npz", x=X + 1j, y=np.arange(60) % 2))


@pytest.mark.filterwarnings("error")  # numpy's overflow RuntimeWarning must not come first
def test_float64_beyond_float32_is_refused_by_name(tmp_path):
    with pytest.raises(UserError, match="beyond float32's range"):
        load_splits(write_npz(tmp_path / "big.npz", x=X.astype(np.float64) * 1e300, y=np.arange(60) % 2))


# --- csv --------------------------------------------------------------------------------------------------------------


def test_csv(tmp_path):
    rows = ["a,b,c,label"] + [f"{i},{i * 2},{-i},{i % 3}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    s = load_splits(f"csv:{tmp_path / 'd.csv'}")
    assert s.input_shape == (3,) and s.classes == 3
    (tmp_path / "bad.csv").write_text("a,label\nx,1\n")
    with pytest.raises(UserError, match="numeric"):
        load_splits(f"csv:{tmp_path / 'bad.csv'}")


@pytest.mark.parametrize("header,rows,words", [
    ("label", [str(i % 2) for i in range(40)], ["has no feature columns"]),
    ("a;b;label", [f"{i};{i};{i % 2}" for i in range(40)], ["no feature columns", "comma-separated"]),
    ("a,b,label", _rows(5) + ["1,2"] + _rows(30), ["line 7 has 2 columns, the header has 3"]),
    ("a,b,label", _rows(5) + ["1,2,0,9"] + _rows(30), ["line 7 has 4 columns, the header has 3"]),
    ("a,b,label", _rows(8) + ["1,abc,0"] + _rows(30), ["line 10, column b: 'abc' is not numeric"]),
    ("a,b,label", _rows(8) + ["1,,0"] + _rows(30), ["line 10, column b is empty"]),
    ("a,b,label", _rows(3) + ["1,2,cat"] + _rows(30), ["line 5, column label: 'cat' is not numeric", "0..K-1"]),
    ("a,label", [f"{i},{i % 3 + 1}" for i in range(60)], ["0..2", "found 1, 2, 3"]),
    ("a,label", [f"{i},5" for i in range(60)], ["single class (5)"]),
    (None, ["1,2,0", "3,4"] + _rows(30), ["line 2 has 2 columns, line 1 has 3"]),
])
def test_bad_csv_is_refused_with_line_and_column(cli, tmp_path, header, rows, words):
    _refused(cli, _csv(tmp_path / "d.csv", header, rows), tmp_path, *words)


def test_csv_with_excel_bom_finds_its_label_column(tmp_path):
    rows = [f"{i % 2},{i},{i * 3}" for i in range(40)]  # label first; the last column holds 40 distinct values
    plain = load_splits(_csv(tmp_path / "plain.csv", "label,a,b", rows))
    bom = load_splits(_csv(tmp_path / "bom.csv", "label,a,b", rows, encoding="utf-8-sig"))
    assert (tmp_path / "bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert bom.classes == 2 and bom.fingerprint() == plain.fingerprint()


def test_csv_without_header_keeps_its_first_row(tmp_path):
    rows = _rows(41)
    bare = load_splits(_csv(tmp_path / "bare.csv", None, rows))
    named = load_splits(_csv(tmp_path / "named.csv", "a,b,label", rows))
    pandas = load_splits(_csv(tmp_path / "pandas.csv", "0,1,2", rows))  # DataFrame.to_csv(index=False) header
    assert len(bare.y_train) + len(bare.y_val) + len(bare.y_test) == 41
    assert bare.classes == 3 and bare.fingerprint() == named.fingerprint() == pandas.fingerprint()
    with pytest.raises(UserError, match="no header row: name its label column by number, 1 to 3"):
        load_splits(f"csv:{tmp_path / 'bare.csv'}::label")
    label_first = [",".join(r.split(",")[-1:] + r.split(",")[:-1]) for r in rows]
    moved = load_splits(_csv(tmp_path / "moved.csv", None, label_first) + "::1")
    assert moved.fingerprint() == bare.fingerprint()  # the same table, label first, named by number


# --- folder -----------------------------------------------------------------------------------------------------------


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


def _images(folder, n=6):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((4, 5), i * 20, np.uint8)).save(folder / f"{i}.png")


def test_folder_skips_hidden_entries_and_names_its_classes(tmp_path):
    for cls in ("cat", "dog", ".ipynb_checkpoints"):
        _images(tmp_path / "d" / cls)
    (tmp_path / "d" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    s = load_splits(f"folder:{tmp_path / 'd'}")
    assert s.classes == 2 and s.class_names == ("cat", "dog")
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 12
    assert json.loads(json.dumps(s.describe()))["class_names"] == ["cat", "dog"]
    assert "class_names" not in load_splits("digits").describe()


def test_empty_class_folder_is_refused(cli, tmp_path):
    for cls in ("a", "c"):
        _images(tmp_path / "d" / cls)
    (tmp_path / "d" / "b").mkdir()
    (tmp_path / "d" / "b" / "notes.txt").write_text("not an image")
    _refused(cli, f"folder:{tmp_path / 'd'}", tmp_path, "class folder", "/b holds no images")


def _png_header(path, width, height):
    """A PNG of a few dozen bytes that declares width x height grey pixels: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20_000, 30_000])  # PIL warns below twice its limit and raises above: both refused
def test_decompression_bomb_in_an_image_folder(cli, tmp_path, side):
    from PIL import Image

    for cls in ("a", "b"):
        _images(tmp_path / "d" / cls)
    _png_header(tmp_path / "d" / "b" / "bomb.png", side, side)
    limit = Image.MAX_IMAGE_PIXELS
    _refused(cli, f"folder:{tmp_path / 'd'}", tmp_path, "bomb.png", "decompression bomb", "268,435,456 pixels")
    assert Image.MAX_IMAGE_PIXELS == limit  # PIL's module-wide limit is put back


def test_a_large_but_real_image_is_read(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        _images(tmp_path / "d" / cls)
    Image.new("L", (12_000, 8_000)).save(tmp_path / "d" / "a" / "big.png")  # 96 Mpx: past PIL's own warning
    assert load_splits(f"folder:{tmp_path / 'd'}").classes == 2


@pytest.mark.parametrize("what", ["file", "class folder"])
def test_symlinks_out_of_an_image_folder_are_refused_unless_allowed(cli, tmp_path, what):
    _images(tmp_path / "d" / "a")
    _images(tmp_path / "outside" / "b")
    if what == "file":
        _images(tmp_path / "d" / "b")
        link, target = tmp_path / "d" / "b" / "x.png", tmp_path / "outside" / "b" / "0.png"
    else:
        link, target = tmp_path / "d" / "b", tmp_path / "outside" / "b"
    link.symlink_to(target)
    _refused(cli, f"folder:{tmp_path / 'd'}", tmp_path, f"{link} is a symbolic link to {target}",
             "data.follow_symlinks = true")
    allowed = load_splits(f"folder:{tmp_path / 'd'}", follow_symlinks=True)
    assert allowed.classes == 2
    # the fingerprint covers what the link led to: other pixels there, another fingerprint
    Image.fromarray(np.full((4, 5), 255, np.uint8)).save(target if what == "file" else target / "0.png")
    assert load_splits(f"folder:{tmp_path / 'd'}", follow_symlinks=True).fingerprint() != allowed.fingerprint()


def test_symlinks_inside_an_image_folder_are_read(tmp_path):
    _images(tmp_path / "d" / "a")
    _images(tmp_path / "d" / "b")
    (tmp_path / "d" / "b" / "copy.png").symlink_to(tmp_path / "d" / "a" / "0.png")
    (tmp_path / "d" / "c").symlink_to("a")  # a relative link to a sibling class folder
    s = load_splits(f"folder:{tmp_path / 'd'}")
    assert s.classes == 3 and len(s.y_train) + len(s.y_val) + len(s.y_test) == 19


@pytest.mark.slow
def test_follow_symlinks_is_a_recipe_key_and_resume_keeps_it(cli, tmp_path):
    _images(tmp_path / "d" / "a", n=12)
    _images(tmp_path / "outside" / "b", n=12)
    (tmp_path / "d" / "b").symlink_to(tmp_path / "outside" / "b")
    code, out, err = cli("distill", "--data", f"folder:{tmp_path / 'd'}", "--set", "data.follow_symlinks=true",
                         "--chain", "1", "--teacher-epochs", "1", "--epochs", "1", "--set", "teacher.width=4",
                         "--no-baseline", "--no-export", "--out", tmp_path / "r", "-q")
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["recipe"]["data"]["follow_symlinks"] is True
    (tmp_path / "r" / "gen-1" / "eval.json").unlink()  # unfinished again: resume reads the data once more
    code, out, err = cli("distill", "--resume", tmp_path / "r", "-q")
    assert code == 0, err


# --- augmentation -----------------------------------------------------------------------------------------------------


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


# --- input standardization --------------------------------------------------------------------------------------------


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


@pytest.mark.slow
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
        code, out, err = cli("distill", "--data", f"csv:{path}", "--chain", "1", "--teacher-epochs", "5",
                             "--epochs", "2", "--set", "teacher.arch=mlp", "--set", "teacher.width=16",
                             "--set", f"data.standardize={how}",
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


@pytest.mark.slow
def test_resuming_a_run_from_before_per_column_standardization_keeps_one_mean(cli, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3)) * [1.0, 100.0, 0.01]
    path = tmp_path / "t.csv"
    np.savetxt(path, np.column_stack([x, (x[:, 0] > 0).astype(int)]), delimiter=",", header="a,b,c,label", comments="")
    args = ["--data", f"csv:{path}", "--chain", "1", "--teacher-epochs", "1", "--epochs", "1",
            "--set", "teacher.width=8",
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
