"""--device and --precision: what this machine can run, training in bf16 autocast, CPU files from any device."""

from __future__ import annotations

import json

import pytest
import torch

from edgekd.distill import compute
from edgekd.distill.objective import Objective
from edgekd.distill.trainer import Schedule, TrainData, evaluate, train
from edgekd.errors import UserError
from edgekd.models import ArchSpec, build

from conftest import TINY, assert_refused

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


def test_auto_is_this_machines_best():
    got = compute.resolve("auto", "auto")
    if HAS_CUDA:
        assert got.device.type == "cuda" and got.precision in ("bf16", "fp32")
    else:
        assert (got.device.type, got.precision) == ("cpu", "fp32")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_one_sentence(device):
    with pytest.raises(UserError, match="no CUDA GPU"):
        compute.resolve(device, "auto")


@pytest.mark.parametrize("device,precision,words", [("cpu", "fp16", "cannot run on cpu"),
                                                    ("cpu", "int4", "unknown precision"),
                                                    ("tpu", "auto", "unknown device")])
def test_a_precision_or_device_that_cannot_run_is_one_sentence(device, precision, words):
    with pytest.raises(UserError, match=words):
        compute.resolve(device, precision)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_the_cli_refuses_a_missing_gpu_before_writing_anything(cli, tmp_path):
    assert_refused(cli("distill", *TINY, "--device", "cuda", "--out", tmp_path / "r"), "no CUDA GPU", "--device cpu")
    assert not (tmp_path / "r").exists()
    assert_refused(cli("distill", *TINY, "--precision", "half", "--out", tmp_path / "r"), "train.precision")


def _tiny_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # 4 classes a small MLP learns in a few epochs
    return TrainData(x[:384], y[:384], x[384:], y[384:])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_in_autocast_learns_and_keeps_fp32_weights(precision):
    data = _tiny_problem()
    torch.manual_seed(0)
    model = build(ArchSpec("mlp", 32, 2, (20,), 4))
    result = train(model, Objective(), data, Schedule(8, 0, 64, 1e-2, 0.0, 0, 0, select="last"),
                   compute=compute.Compute(torch.device("cpu"), precision))
    assert result["val_acc"] > 0.8, result["history"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert evaluate(model, data.x_val, data.y_val)[0] == pytest.approx(result["val_acc"])


@pytest.mark.slow
def test_a_bf16_run_records_its_device_and_precision(cli, tmp_path):
    code, _, err = cli("distill", *TINY, "--precision", "bf16", "--out", tmp_path / "r", "-q")
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["compute"]["device"] == "cpu" and manifest["compute"]["precision"] == "bf16"
    assert manifest["recipe"]["train"]["precision"] == "bf16"
    assert "in bf16 arithmetic" in (tmp_path / "r" / "report" / "report.md").read_text()


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_a_gpu_run_resumes_on_a_machine_without_one_when_told_cpu(cli, tmp_path):
    """A run saved as trained on CUDA in bf16 (its manifest made so: no GPU here) resumes with
    --device cpu --precision fp32; its saved recipe stays, the change is in compute_history."""
    run = tmp_path / "r"
    code, _, err = cli("distill", "--chain", "1", "--teacher-epochs", "1", "--epochs", "1", "--set", "teacher.width=8",
                       "--transfer", "0", "--no-baseline", "--no-export", "--out", run, "-q")
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["recipe"]["train"].update(device="cuda", precision="bf16")
    manifest["compute"] = {**manifest["compute"], "device": "cuda", "precision": "bf16"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "gen-1" / "eval.json").unlink()  # unfinished: the resume trains it again
    assert_refused(cli("distill", "--resume", run, "-q"), "no CUDA GPU", "--device cpu")
    code, _, err = cli("distill", "--resume", run, "--device", "cpu", "--precision", "fp32", "-q")
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["recipe"]["train"]["device"] == "cuda" and manifest["status"] == "done"
    assert manifest["compute_history"][-1]["device"] == "cpu" and manifest["compute_history"][-1]["precision"] == "fp32"


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_a_gpu_run_writes_files_a_cpu_machine_loads(cli, tmp_path, precision):
    code, _, err = cli("distill", *TINY, "--device", "cuda", "--precision", precision, "--out", tmp_path / "r", "-q")
    assert code == 0, err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["compute"]["device"].startswith("cuda") and manifest["compute"]["precision"] == precision
    for path in (tmp_path / "r").glob("*/checkpoint.pt"):
        payload = torch.load(path, weights_only=True)  # no map_location: every tensor must already be on the CPU
        assert all(t.device.type == "cpu" for t in payload["model"].values())
