import json

import pytest
import torch

from edgekd.distill.teachers import Teacher
from edgekd.models import ArchSpec, build


def _teacher(seed):
    torch.manual_seed(seed)
    return Teacher("edgekd", f"t{seed}", module=build(ArchSpec("mlp", 8, 1, (5,), 3)).eval())


def test_ensemble_combines_in_logit_or_probability_space():
    a, b = _teacher(0), _teacher(1)
    x = torch.randn(4, 5)
    la, lb = a.logits(x), b.logits(x)
    torch.testing.assert_close(Teacher.ensemble([a, b], "mean-logits", False).logits(x), (la + lb) / 2)
    probs = Teacher.ensemble([a, b], "mean-probs", False).logits(x).exp()
    torch.testing.assert_close(probs, (la.softmax(1) + lb.softmax(1)) / 2)
    assert Teacher.ensemble([a, b], "mean-logits", False).module is None   # no layers to hook into
    assert Teacher.ensemble([a, b], "mean-logits", True).module is a.module


def test_ensemble_of_torch_and_onnx_teachers(cli, tiny_run, tmp_path):
    from edgekd.models import load_model

    model, spec = load_model(tiny_run / "gen-1" / "model.pt")
    onnx_path = tmp_path / "other.onnx"
    torch.onnx.export(model, (torch.zeros(1, *spec.input_shape),), str(onnx_path), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}})
    code, out, err = cli("distill", "--teacher", tiny_run, "--teacher", onnx_path, "--ensemble", "mean-probs",
                         "--chain", "1", "--epochs", "1", "--transfer", "200", "--no-baseline", "--no-export",
                         "--out", tmp_path / "e", "--json")
    assert code == 0, err
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    teacher = manifest["members"]["teacher"]
    assert teacher["kind"] == "ensemble" and manifest["recipe"]["teacher"]["combine"] == "mean-probs"
    assert (tmp_path / "e" / "teacher" / "member-0" / "model.pt").is_file()
    assert (tmp_path / "e" / "teacher" / "member-1" / "model.onnx").is_file()
    # the first teacher's architecture, shrunk, is generation 1's
    assert manifest["members"]["gen-1"]["arch"]["width"] == 8
    code, out, err = cli("distill", "--teacher", tmp_path / "e", "--chain", "1", "--out", tmp_path / "again")
    assert code == 2 and "taught by an ensemble" in err and "member-1" in err  # says what to give instead
    code, out, err = cli("distill", "--teacher", onnx_path, "--teacher", tiny_run, "--primary-teacher", "--method",
                         "fitnet", "--students", "cnn:4", "--chain", "1", "--out", tmp_path / "p")
    assert code == 2 and "put a torch teacher first" in err


def test_primary_teacher_hooks_the_first_but_the_ensemble_teaches(cli, tiny_run, tmp_path):
    """--primary-teacher: feature methods read the first teacher's layers; the soft targets
    stay the ensemble's, so a different second member changes what the student learns."""
    kd = {}
    for name, others in (("alone", []), ("with-gen-1", [tiny_run / "gen-1"]), ("with-gen-2", [tiny_run / "gen-2"])):
        flags = [arg for other in others for arg in ("--teacher", other)] + (["--primary-teacher"] if others else [])
        code, out, err = cli("distill", "--teacher", tiny_run / "teacher", *flags, "--method", "kd", "--method", "fitnet",
                             "--chain", "1", "--epochs", "1", "--transfer", "0", "--no-baseline", "--no-export",
                             "--out", tmp_path / name, "-q")
        assert code == 0, err
        row = json.loads((tmp_path / name / "gen-1" / "metrics.jsonl").read_text().splitlines()[0])
        assert row["fitnet"] > 0
        kd[name] = row["kd"]
    assert len(set(kd.values())) == 3, kd


def test_hooked_teacher_takes_batches_larger_than_its_soft_target_chunks(cli, tiny_run, tmp_path):
    code, out, err = cli("distill", "--teacher", tiny_run, "--method", "kd", "--method", "fitnet", "--chain", "1",
                         "--epochs", "1", "--transfer", "0", "--no-baseline", "--no-export", "--set",
                         "train.batch_size=3000", "--out", tmp_path / "big", "-q")
    assert code == 0, err  # the hook must see the whole batch, not its last 2048-row chunk


def test_born_again_keeps_the_teachers_architecture(cli, tmp_path):
    from conftest import TINY

    code, out, err = cli("distill", *TINY, "--method", "born-again", "--no-baseline", "--out", tmp_path / "b", "--json")
    assert code == 0, err
    members = json.loads((tmp_path / "b" / "manifest.json").read_text())["members"]
    assert members["gen-1"]["arch"] == members["gen-2"]["arch"]
    assert members["gen-1"]["params"] == members["teacher"]["params"]
    assert members["gen-2"]["teacher"] == "gen-1"


def test_mutual_learning_trains_peers_without_a_teacher(cli, tmp_path):
    code, out, err = cli("distill", "--method", "dml", "--peers", "3", "--chain", "1", "--epochs", "2",
                         "--set", "teacher.width=16", "--no-export", "--out", tmp_path / "m", "--json")
    assert code == 0, err
    members = json.loads((tmp_path / "m" / "manifest.json").read_text())["members"]
    assert "teacher" not in members and not (tmp_path / "m" / "teacher").exists()
    gen = members["gen-1"]
    assert gen["teacher"] == "peers" and len(gen["peer_test_acc"]) == 3
    best = max(range(3), key=lambda i: gen["peer_val_acc"][i])   # the best peer on validation is exported
    assert gen["exported_peer"] == best and gen["peer_test_acc"][best] == gen["test_acc"]
    curve = [json.loads(l) for l in (tmp_path / "m" / "gen-1" / "metrics.jsonl").read_text().splitlines()]
    assert curve[gen["best_epoch"] - 1]["val_acc"] == gen["val_acc"] == max(gen["peer_val_acc"])  # the exported peer's
    assert members["baseline-1"]["epochs"] == gen["epochs"]    # same budget: neither uses the transfer set
    data = json.loads((tmp_path / "m" / "manifest.json").read_text())["data"]
    assert data["transfer"] == 0  # "auto" makes none: no teacher would label it
    code, out, err = cli("distill", "--method", "dml", "--transfer", "3600", "--chain", "1", "--out", tmp_path / "m2")
    assert code == 2 and "only a teacher labels a transfer set" in err and not (tmp_path / "m2").exists()


def test_dml_loss_by_hand():
    from edgekd.distill.methods import Batch, create
    from edgekd.distill.methods.kd import soft_kl

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, generator=g)
    value = create("dml", {"peers": "3"}).forward(Batch(logits, None, torch.zeros(4, dtype=torch.long)))
    expected = sum(sum(soft_kl(logits[i], logits[j], 2.0) for j in range(3) if j != i) / 2 for i in range(3))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
