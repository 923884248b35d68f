"""Data larger than memory (data.load = "stream"): image folders decoded batch by batch by
DataLoader workers, .npz arrays mapped from disk, soft targets cached on disk as float16. The
streamed data must be the same data: the same splits, fingerprints and rows as in memory."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from test_data import GOLDEN, _valid

from edgekd.data import load_splits, load_transfer
from edgekd.data.rows import ArrayRows, ImageFiles, Joined, Taken, chunks, loader, npz_members, save_npz, take
from edgekd.errors import UserError


@pytest.mark.parametrize("kind", ["npz", "npz_given", "folder"])
def test_streamed_data_is_the_same_data(kind, tmp_path):
    spec = _valid(tmp_path)[kind]
    memory, stream = load_splits(spec, load="memory"), load_splits(spec, load="stream")
    assert stream.on_disk and not memory.on_disk
    assert stream.fingerprint() == memory.fingerprint() == GOLDEN[kind]
    for name in ("x_train", "x_val", "x_test"):
        rows, array = getattr(stream, name), getattr(memory, name)
        assert rows.shape == array.shape and rows.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(rows), array)
        index = np.array([len(array) - 1, 0, len(array) // 2, 0])  # any order, repeats
        np.testing.assert_array_equal(take(rows, index), array[index])
    assert stream.describe() == {**memory.describe(), "load": "stream"}


def test_auto_keeps_small_data_in_memory(tmp_path):
    assert not load_splits(_valid(tmp_path)["folder"]).on_disk


def test_views_compose_and_resolve_to_what_they_view():
    base = np.arange(60, dtype=np.float32).reshape(20, 3)
    rows = ArrayRows(base)
    view = Joined(Taken(rows, np.arange(19, -1, -2)), base[:4])
    expected = np.concatenate([base[19::-2], base[:4]])
    index = np.array([13, 0, 10, 3, 9, 11])
    np.testing.assert_array_equal(view[index], expected[index])
    np.testing.assert_array_equal(view[2:12], expected[2:12])
    np.testing.assert_array_equal(view[-1], expected[-1])
    assert np.concatenate(list(chunks(view, 4))).tolist() == expected.tolist()
    parts = view.parts(index)  # stored rows, their index there, their places in the batch
    out = np.empty((len(index), 3), np.float32)
    for stored, i, at in parts:
        out[at] = stored.fetch(i)
    np.testing.assert_array_equal(out, expected[index])
    with pytest.raises(IndexError):
        view[len(view)]


def test_npz_written_in_chunks_maps_back(tmp_path):
    x = np.random.default_rng(0).normal(size=(2500, 3, 4)).astype(np.float32)
    rows = ArrayRows(x)
    with open(tmp_path / "a.npz", "wb") as f:
        save_npz(f, x=rows, y=np.arange(2500))
    with np.load(tmp_path / "a.npz") as z:  # numpy reads what it wrote
        np.testing.assert_array_equal(z["x"], x)
    mapped = npz_members(tmp_path / "a.npz")
    assert isinstance(mapped["x"], np.memmap)
    np.testing.assert_array_equal(mapped["y"], np.arange(2500))


def test_what_cannot_be_streamed_is_refused_in_one_sentence(cli, tmp_path):
    x = np.zeros((40, 3), np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=np.arange(40) % 2)
    with pytest.raises(UserError, match="compressed.*numpy.savez"):
        load_splits(f"npz:{tmp_path / 'c.npz'}", load="stream")
    assert load_splits(f"npz:{tmp_path / 'c.npz'}", load="memory").classes == 2
    with zipfile.ZipFile(tmp_path / "o.npz", "w") as z:  # an object array: a pickle inside
        with z.open("x.npy", "w") as f:
            np.lib.format.write_array(f, np.array([[1, "a"]] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="Python objects"):
        npz_members(tmp_path / "o.npz")
    np.savez(tmp_path / "n.npz", x=np.full((40, 3), np.nan), y=np.arange(40) % 2)
    with pytest.raises(UserError, match="40 samples contain NaN"):
        load_splits(f"npz:{tmp_path / 'n.npz'}", load="stream")
    code, _, err = cli("distill", "--data", f"npz:{tmp_path / 'c.npz'}", "--load", "stream", "--out",
                       tmp_path / "r")
    assert code == 2 and "compressed" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    code, _, err = cli("distill", "--load", "disk", "--out", tmp_path / "r")
    assert code == 2 and "data.load must be auto, memory or stream" in err


def test_transfer_npz_is_mapped_when_streaming(tmp_path):
    splits = load_splits("mnist1d")
    np.savez(tmp_path / "t.npz", x=np.ones((30, 40), np.float32))
    mapped = load_transfer(splits, f"npz:{tmp_path / 't.npz'}", "stream").x_transfer
    assert isinstance(mapped, ArrayRows) and np.asarray(mapped).sum() == 30 * 40


def _folder(root, n=24, side=8):
    for k in range(2):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.full((side, side), 30 + 200 * k, np.uint8)
            pixels[i % side] = 0
            Image.fromarray(pixels).save(root / f"c{k}" / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_an_image_that_changes_while_training_reads_is_one_sentence(tmp_path, workers):
    folder = _folder(tmp_path / "d")
    splits = load_splits(f"folder:{folder}", load="stream", workers=workers)
    files = splits.x_train.base.base  # test, then validation split off the folder's files
    assert isinstance(files, ImageFiles) and files.workers == workers
    batches = [np.arange(i, min(i + 4, len(splits.x_train))) for i in range(0, len(splits.x_train), 4)]
    assert sum(len(b) for b in loader(splits.x_train, batches)) == len(splits.x_train)  # the pool, once
    changed = files.files[int(splits.x_train.base.index[splits.x_train.index[0]])]
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(changed)  # another image under the same name
    with pytest.raises(UserError, match=f"{changed} changed while edgekd was reading") as e:
        list(loader(splits.x_train, batches))  # the second pass: the pool's workers are reused
    assert "Traceback" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_run_on_a_streamed_folder_matches_the_same_run_in_memory(cli, tmp_path):
    """The teacher and the scratch control see the same rows in the same order: the same
    accuracies. The student learns from float16 soft targets instead of float32 ones, so it may
    differ; it must still train, and its soft-target cache must be gone once it finished."""
    folder = _folder(tmp_path / "d", n=40)
    results = {}
    for load in ("memory", "stream"):
        code, out, err = cli("distill", "--data", f"folder:{folder}", "--load", load, "--chain", "1",
                             "--teacher-arch", "cnn", "--teacher-width", "4", "--teacher-epochs", "2",
                             "--epochs", "2", "--no-export", "--out", tmp_path / load, "-q")
        assert code == 0, err
        results[load] = json.loads((tmp_path / load / "manifest.json").read_text())
    memory, stream = results["memory"], results["stream"]
    assert stream["data"]["load"] == "stream" and stream["recipe"]["data"]["load"] == "stream"
    assert stream["data"]["fingerprint"] == memory["data"]["fingerprint"]
    for member in ("teacher", "baseline-1"):
        assert stream["members"][member]["test_acc"] == memory["members"][member]["test_acc"]
    assert 0 <= stream["members"]["gen-1"]["test_acc"] <= 1
    assert not list((tmp_path / "stream").rglob("soft_targets.npy"))
    code, out, err = cli("export", tmp_path / "stream", "--format", "onnx", "--no-int8")
    assert code == 0, err
    assert json.loads((tmp_path / "stream" / "gen-1" / "export" / "validation.json").read_text())
