"""Hostile files, one matrix: every kind of file edgekd loads, given a payload that would run code
(a pickle whose __reduce__ writes a marker file) or read outside its folder (ONNX external data
at ../secret or an absolute path). Each is refused in one sentence with exit 2, and the marker
is never written. A refusal before training leaves no run directory.

Not here because nothing is refused: the bench's cached inputs.npz (bench/pipeline.py) is loaded
without pickles and rebuilt from the data when unreadable; --plugin files run code by design."""

import builtins
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.models.io import FORMAT

from conftest import assert_refused


class Shell:
    """A pickle calling a module torch blocks outright ("unsupported GLOBAL posix.system")."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Exec(Shell):
    """A pickle calling a builtin, which torch words unlike a blocked module ("Unsupported global")."""

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


PAYLOADS = {"os.system": Shell, "builtins.exec": Exec}
FLAGS = ["--chain", "1", "--teacher-epochs", "1", "--epochs", "1", "--no-baseline", "--no-export"]
TINY = [*FLAGS, "--transfer", "0"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The smallest finished run (one generation, one epoch), which each test copies before poisoning it."""
    from edgekd.distill.chain import distill
    from edgekd.recipe import from_dict

    root = tmp_path_factory.mktemp("small") / "run"
    distill(from_dict({"chain": {"generations": 1, "baseline": False}, "teacher": {"width": 4, "epochs": 1},
                       "train": {"epochs": 1}, "data": {"transfer": "0"}, "export": {"enabled": False}}), out=root)
    return root


def _copy(small_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(small_run, root)
    return root


def teacher_pt(tmp_path, payload, small_run):
    torch.save({"format": FORMAT, "arch": payload}, tmp_path / "t.pt")
    return ["distill", "--teacher", tmp_path / "t.pt", *TINY, "--out", tmp_path / "r"], ["not plain weights"]


def teacher_torchscript(tmp_path, payload, small_run):
    with zipfile.ZipFile(tmp_path / "t.pt", "w") as z:  # a TorchScript archive: code/ and pickled constants
        z.writestr("t/code/__torch__.py", "")
        z.writestr("t/data.pkl", pickle.dumps(payload, protocol=2))
        z.writestr("t/constants.pkl", pickle.dumps(payload, protocol=2))
        z.writestr("t/version", "3\n")
    return ["distill", "--teacher", tmp_path / "t.pt", *TINY, "--out", tmp_path / "r"], ["not a loadable TorchScript"]


def run_model(tmp_path, payload, small_run):
    """A finished member's model.pt, loaded when --resume skips the member."""
    root = _copy(small_run, tmp_path)
    torch.save({"format": FORMAT, "arch": payload, "state_dict": {}}, root / "gen-1" / "model.pt")
    return ["distill", "--resume", root, "-q"], ["gen-1", "not plain weights"]


def run_checkpoint(tmp_path, payload, small_run):
    """An unfinished member's checkpoint.pt, loaded when --resume continues it."""
    root = _copy(small_run, tmp_path)
    (root / "gen-1" / "eval.json").unlink()
    torch.save({"format": "edgekd-checkpoint-1", "model": payload}, root / "gen-1" / "checkpoint.pt")
    return ["distill", "--resume", root, "-q"], ["cannot resume from", "checkpoint.pt", "pickles code"]


def data_npz(tmp_path, payload, small_run):
    np.savez(tmp_path / "d.npz", x=np.array([payload] * 60, dtype=object), y=np.arange(60) % 2)
    return ["distill", "--data", f"npz:{tmp_path / 'd.npz'}", *TINY, "--out", tmp_path / "r"], ["plain arrays"]


def transfer_npz(tmp_path, payload, small_run):
    np.savez(tmp_path / "u.npz", x=np.array([payload] * 60, dtype=object))
    return ["distill", *FLAGS, "--transfer", f"npz:{tmp_path / 'u.npz'}", "--out", tmp_path / "r"], ["plain arrays"]


def _onnx_with_data_at(tmp_path, location: str) -> Path:
    import onnx

    model = torch.nn.Linear(40, 10)
    (tmp_path / "t").mkdir()
    torch.onnx.export(model, (torch.zeros(1, 40),), str(tmp_path / "plain.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}})
    onnx.save_model(onnx.load(str(tmp_path / "plain.onnx")), str(tmp_path / "t" / "t.onnx"),
                    save_as_external_data=True, location="weights.bin", size_threshold=0)
    proto = onnx.load(str(tmp_path / "t" / "t.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(tmp_path / "t" / "t.onnx"))
    shutil.move(tmp_path / "t" / "weights.bin", tmp_path / "secret")  # real weights: only the location is wrong
    return tmp_path / "t" / "t.onnx"


def onnx_parent(tmp_path, payload, small_run):
    path = _onnx_with_data_at(tmp_path, "../secret")
    return ["distill", "--teacher", path, "--width", "4", *TINY, "--out", tmp_path / "r"], ["'../secret'", "outside"]


def onnx_absolute(tmp_path, payload, small_run):
    path = _onnx_with_data_at(tmp_path, str(tmp_path / "secret"))
    return ["distill", "--teacher", path, "--width", "4", *TINY, "--out", tmp_path / "r"], ["secret'", "outside"]


def teacher_pt2(tmp_path, payload, small_run):
    from edgekd.distill import teachers

    if ".pt2" not in Path(teachers.__file__).read_text():
        pytest.skip("edgekd does not load .pt2 (torch.export) files yet")
    with zipfile.ZipFile(tmp_path / "t.pt2", "w") as z:  # torch.export's archive, with a pickled payload inside
        z.writestr("t/archive_format", "pt2")
        z.writestr("t/data/weights/model_weights_config.json", "{}")
        z.writestr("t/data/constants/x.pt", pickle.dumps(payload, protocol=2))
    return ["distill", "--teacher", tmp_path / "t.pt2", *TINY, "--out", tmp_path / "r"], []


SLOW = {run_model, run_checkpoint}  # these poison a trained run
ONNX = {onnx_parent, onnx_absolute}  # an ONNX file carries no pickle: one payload is enough
CASES = [pytest.param(hostile, payload, id=f"{hostile.__name__}-{payload}",
                      marks=[pytest.mark.slow] if hostile in SLOW else [])
         for hostile in (teacher_pt, teacher_torchscript, run_model, run_checkpoint, data_npz, transfer_npz,
                         onnx_parent, onnx_absolute, teacher_pt2)
         for payload in PAYLOADS if hostile not in ONNX or payload == next(iter(PAYLOADS))]


@pytest.mark.parametrize("hostile,payload", CASES)
def test_hostile_file_is_refused_and_runs_nothing(cli, tmp_path, request, hostile, payload):
    small_run = request.getfixturevalue("small_run") if hostile in SLOW else None
    marker = tmp_path / "marker"
    args, words = hostile(tmp_path, PAYLOADS[payload](marker), small_run)
    assert_refused(cli(*args), *words)
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "r").exists()  # refused before the run directory was made
