"""Bad user data (npz, csv, folder) is refused in one sentence naming what and where; valid data is unchanged."""

import json

import numpy as np
import pytest
from PIL import Image

from edgekd.data import load_splits
from edgekd.errors import UserError

from conftest import TINY, write_npz


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


# --- csv -------------------------------------------------------------------------------------------------------

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
    moved = load_splits(_csv(tmp_path / "moved.csv", None, [",".join(r.split(",")[-1:] + r.split(",")[:-1]) for r in rows]) + "::1")
    assert moved.fingerprint() == bare.fingerprint()  # the same table, label first, named by number


# --- npz -------------------------------------------------------------------------------------------------------

X = np.random.default_rng(0).normal(size=(60, 3))


@pytest.mark.parametrize("arrays,words", [
    ({"x": X, "y": np.full(60, 5)}, ["single class (5)"]),
    ({"x": X, "y": np.arange(60) % 3 * 10}, ["class indices 0..2", "found 0, 10, 20"]),
    ({"x": X, "y": np.arange(60) % 3 + 1}, ["class indices 0..2", "found 1, 2, 3"]),
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


def test_resume_of_a_file(cli, tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    code, out, err = cli("distill", "--resume", tmp_path / "d.npz")
    assert code == 2 and "is a file, not a run directory" in err, err


@pytest.mark.filterwarnings("error")  # numpy's ComplexWarning must not be the only sign
def test_complex_inputs_are_refused(tmp_path):
    with pytest.raises(UserError, match="complex"):
        load_splits(write_npz(tmp_path / "c.npz", x=X + 1j, y=np.arange(60) % 2))


@pytest.mark.filterwarnings("error")  # numpy's overflow RuntimeWarning must not come first
def test_float64_beyond_float32_is_refused_by_name(tmp_path):
    with pytest.raises(UserError, match="beyond float32's range"):
        load_splits(write_npz(tmp_path / "big.npz", x=X.astype(np.float64) * 1e300, y=np.arange(60) % 2))


# --- folder ----------------------------------------------------------------------------------------------------

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
