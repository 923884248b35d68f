"""Teachers: a run's teacher, ONNX, TorchScript and torch.export files, ensembles and the primary teacher
feature methods hook into; a teacher that cannot teach the data or the method is refused before training."""

import json

import numpy as np
import pytest
import torch

from edgekd.distill.teachers import Teacher
from edgekd.models import ArchSpec, build

from conftest import assert_refused, write_npz


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
        code, out, err = cli("distill", "--teacher", tiny_run / "teacher", *flags, "--method", "kd",
                             "--method", "fitnet",
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


@pytest.mark.parametrize("dynamic_batch", [True, False])  # torch.onnx.export fixes batch 1 unless told
def test_onnx_teacher_teaches_a_student(cli, tmp_path, tiny_run, dynamic_batch):
    from edgekd.models import load_model

    model, spec = load_model(tiny_run / "teacher" / "model.pt")
    path = tmp_path / "teacher.onnx"
    torch.onnx.export(model, (torch.zeros(1, *spec.input_shape),), str(path), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}} if dynamic_batch else None)
    # an ONNX teacher has no architecture to shrink: the student is --student/--width/--depth, each
    # defaulting to the data's students (cnn:32x4 for signals)
    arch = ["--student", "cnn", "--width", "8", "--depth", "3"] if dynamic_batch else ["--width", "8"]
    code, out, err = cli("distill", "--teacher", path, *arch, "--chain", "1", "--epochs", "1", "--transfer", "200",
                         "--no-baseline", "--no-export", "--out", tmp_path / "o", "--json")
    assert code == 0, err
    assert (tmp_path / "o" / "teacher" / "model.onnx").is_file()
    rows = json.loads(out)["generations"]
    assert rows[1]["teacher"] == "teacher" and rows[1]["arch"] == ("cnn:8x3" if dynamic_batch else "cnn:8x4")
    # its size is the ONNX file's; its weights are the torch model's, less the batch norms the export folded
    assert rows[0]["size_bytes"] == path.stat().st_size
    params = sum(p.numel() for p in model.parameters())
    assert 0.9 * params < rows[0]["params"] <= params
    if not dynamic_batch:  # nothing given: the data's students
        code, out2, err = cli("distill", "--teacher", path, "--chain", "1", "--epochs", "1", "--transfer", "0",
                              "--no-baseline", "--no-export", "--out", tmp_path / "n", "--json")
        assert code == 0, err
        assert json.loads(out2)["generations"][1]["arch"] == "cnn:32x4"
    # the same network in ONNX Runtime: the same test accuracy as the torch teacher it came from
    torch_acc = json.loads((tiny_run / "teacher" / "eval.json").read_text())["test_acc"]
    assert rows[0]["test_acc"] == pytest.approx(torch_acc, abs=1e-6)


def test_torchscript_teacher(cli, tmp_path, tiny_run):
    from edgekd.models import load_model

    model, spec = load_model(tiny_run / "teacher" / "model.pt")
    path = tmp_path / "teacher.pt"
    torch.jit.trace(model, torch.zeros(2, *spec.input_shape)).save(str(path))
    code, out, err = cli("distill", "--teacher", path, "--students", "cnn:8x3", "--chain", "1", "--epochs", "1",
                         "--transfer", "200", "--no-baseline", "--no-export", "--out", tmp_path / "o", "--json")
    assert code == 0, err
    assert (tmp_path / "o" / "teacher" / "model.ts").is_file()


def test_missing_teacher(cli):
    assert_refused(cli("distill", "--teacher", "missing.pt", "--transfer", "0"), "does not exist")


def test_teacher_with_wrong_class_count(cli, tiny_run, tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 40)).astype(np.float32)  # the teacher's input shape, 3 classes
    data = write_npz(tmp_path / "three.npz", x=x, y=np.arange(60) % 3)
    assert_refused(cli("distill", "--data", data, "--teacher", tiny_run, "--transfer", "0",
                        "--out", tmp_path / "r"), "predicts 10 classes but the data has 3")


def test_teacher_with_wrong_input_shape(cli, tiny_run, tmp_path):
    assert_refused(cli("distill", "--data", "digits", "--teacher", tiny_run, "--transfer", "0",
                        "--out", tmp_path / "r"), "trained on inputs of shape (40,)", "(1, 8, 8)")
    # a 1-D signal of another length: the CNN's global pooling would run it, on meaningless features
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "short.npz", x=rng.normal(size=(300, 20)).astype(np.float32), y=np.arange(300) % 10)
    assert_refused(cli("distill", "--data", f"npz:{tmp_path / 'short.npz'}", "--teacher", tiny_run, "--transfer", "0",
                        "--out", tmp_path / "r"), "trained on inputs of shape (40,), the data's are (20,)")
    assert not (tmp_path / "r").exists()


def test_feature_method_with_onnx_teacher(cli, tiny_run, tmp_path):
    from edgekd.models import load_model

    model, spec = load_model(tiny_run / "teacher" / "model.pt")
    path = tmp_path / "t.onnx"
    torch.onnx.export(model, (torch.zeros(1, *spec.input_shape),), str(path), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}})
    assert_refused(cli("distill", "--teacher", path, "--method", "fitnet", "--students", "cnn:8x3", "--chain", "1",
                        "--transfer", "0", "--out", tmp_path / "r"), "intermediate layers")


class LogitsAndProbs(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return logits, logits.softmax(1)


@pytest.mark.parametrize("case,words", [("two-outputs", ["2 outputs", "logits, probs"]),
                                        ("batch-4", ["fixed batch of 4", "dynamic batch axis"])])
def test_onnx_teacher_that_cannot_teach(cli, tiny_run, tmp_path, case, words):
    from edgekd.models import load_model

    model, spec = load_model(tiny_run / "teacher" / "model.pt")
    net, outputs, batch = (LogitsAndProbs(model), ["logits", "probs"], 1) if case == "two-outputs" \
        else (model, ["logits"], 4)
    torch.onnx.export(net, (torch.zeros(batch, *spec.input_shape),), str(tmp_path / "t.onnx"), dynamo=False,
                      input_names=["x"], output_names=outputs)
    assert_refused(cli("distill", "--teacher", tmp_path / "t.onnx", "--students", "cnn:8x3", "--chain", "1",
                        "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_onnx_teacher_with_external_data_resumes_from_the_runs_copy(cli, tmp_path):
    """Weights saved beside the model (save_as_external_data) are copied into the run with it, so
    --resume needs nothing outside the run."""
    import onnx

    torch.manual_seed(0)
    model = build(ArchSpec("cnn", 8, 2, (40,), 10)).eval()
    torch.onnx.export(model, (torch.zeros(1, 40),), str(tmp_path / "plain.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}})
    (tmp_path / "mine" / "data").mkdir(parents=True)
    onnx.save_model(onnx.load(str(tmp_path / "plain.onnx")), str(tmp_path / "mine" / "t.onnx"),
                    save_as_external_data=True, location="data/weights.bin", size_threshold=0)
    flags = ["--students", "cnn:4x2", "--chain", "1", "--epochs", "1", "--transfer", "0", "--no-baseline",
             "--no-export", "-q"]
    code, out, err = cli("distill", "--teacher", tmp_path / "mine" / "t.onnx", *flags, "--out", tmp_path / "r")
    assert code == 0, err
    copy = tmp_path / "r" / "teacher"
    assert (copy / "data" / "weights.bin").read_bytes() == (tmp_path / "mine" / "data" / "weights.bin").read_bytes()
    teacher = json.loads((tmp_path / "r" / "manifest.json").read_text())["members"]["teacher"]
    assert teacher["size_bytes"] == sum(f.stat().st_size for f in (tmp_path / "mine").rglob("*") if f.is_file())
    (tmp_path / "mine").rename(tmp_path / "gone")
    (tmp_path / "r" / "gen-1" / "eval.json").unlink()  # unfinished again: resume loads the teacher
    code, out, err = cli("distill", "--resume", tmp_path / "r", "-q")
    assert code == 0, err
    assert (tmp_path / "r" / "gen-1" / "eval.json").is_file()


# --- torch.export (.pt2) teachers ---------------------------------------------------------------------------------


def save_pt2(model, path, batch, dynamic=False):
    """A program as users save one: torch.export.save(torch.export.export(model, (example,)), path)."""
    example = torch.zeros(batch, 40)  # mnist1d's (40,) signals
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model.eval(), (example,), dynamic_shapes=shapes), str(path))
    return path


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_pt2_teacher_teaches_a_student_and_resumes_from_the_runs_copy(cli, tmp_path, tiny_run, dynamic_batch):
    from edgekd.models import load_model

    model, _ = load_model(tiny_run / "teacher" / "model.pt")
    path = save_pt2(model, tmp_path / "teacher.pt2", batch=4 if not dynamic_batch else 2, dynamic=dynamic_batch)
    root = tmp_path / "o"
    code, out, err = cli("distill", "--teacher", path, "--students", "cnn:8x3", "--chain", "1", "--epochs", "1",
                         "--transfer", "200", "--no-baseline", "--no-export", "--out", root, "--json")
    assert code == 0, err
    assert (root / "teacher" / "model.pt2").read_bytes() == path.read_bytes()
    rows = json.loads(out)["generations"]
    # the same network run by torch.export, at batch 4 in chunks when fixed: the torch teacher's accuracy
    torch_acc = json.loads((tiny_run / "teacher" / "eval.json").read_text())["test_acc"]
    assert rows[0]["test_acc"] == pytest.approx(torch_acc, abs=1e-6)
    assert rows[0]["params"] == sum(p.numel() for p in model.parameters())
    teacher = json.loads((root / "manifest.json").read_text())["members"]["teacher"]
    assert teacher["kind"] == "torch-export" and teacher["details"].get("batch") == (None if dynamic_batch else 4)
    path.unlink()  # resume needs nothing outside the run
    (root / "gen-1" / "eval.json").unlink()
    code, out, err = cli("distill", "--resume", root, "-q")
    assert code == 0, err


class Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def _rewrite(src, dst, change):
    """Copy a zip archive, passing each entry's bytes through change(name, data)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, change(name, zin.read(name)))
    return dst


def _pickling_weights(name, data, marker):
    if name.endswith("_weights_config.json"):
        config = json.loads(data)
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True
        return json.dumps(config)
    if name.endswith("/data/weights/weight_0"):
        import io
        buffer = io.BytesIO()
        torch.save(Shell(marker), buffer)
        return buffer.getvalue()
    return data


@pytest.mark.parametrize("case, words", [
    ("random bytes", ["corrupt or not a torch.export archive"]),
    ("truncated", ["corrupt or not a torch.export archive"]),
    ("pickled weights", ["stores pickled objects", "refusing"]),
    ("other input shape", ["exported for inputs of shape (N, 30)", "(N, 40)"]),
])
def test_pt2_teacher_that_cannot_teach_is_one_sentence_and_runs_nothing(cli, tmp_path, case, words):
    net = torch.nn.Sequential(torch.nn.Linear(30 if case == "other input shape" else 40, 10))
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(net.eval(), (torch.zeros(2, net[0].in_features),)), str(good))
    path, marker = tmp_path / "t.pt2", tmp_path / "ran"
    if case == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif case == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "pickled weights":
        _rewrite(good, path, lambda name, data: _pickling_weights(name, data, marker))
    else:
        path = good
    assert_refused(cli("distill", "--teacher", path, "--width", "8", "--chain", "1", "--transfer", "0",
                       "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists() and not marker.exists()
