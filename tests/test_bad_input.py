"""Every kind of bad input: one sentence on stderr, exit 2, no traceback, nothing damaged."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, assert_refused, file_hashes, write_npz


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


def test_missing_data_file(cli, tmp_path):
    assert_refused(cli("distill", "--data", "npz:nope.npz", "--out", tmp_path / "r"), "does not exist")


def test_unknown_data_spec(cli):
    assert_refused(cli("distill", "--data", "imagenet"), "unknown data spec", "mnist1d")


def test_missing_teacher(cli):
    assert_refused(cli("distill", "--teacher", "missing.pt"), "does not exist")


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


def test_corrupt_checkpoint(cli, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert_refused(cli("distill", "--teacher", path), "corrupt")


def test_foreign_checkpoint(cli, tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    assert_refused(cli("distill", "--teacher", path), "not an edgekd model")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused_not_run(cli, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgekd-model-1", "arch": Evil()}, path)
    result = cli("distill", "--teacher", path)
    assert_refused(result, "not plain weights")
    assert "this must never run" not in result[1] + result[2]


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


def test_wrong_type_in_recipe(cli, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[train]\nepochs = "many"\n')
    assert_refused(cli("distill", "--config", path), "train.epochs", "integer")


def test_unknown_method(cli):
    assert_refused(cli("distill", "--method", "magic", *TINY), "unknown distillation method", "kd")


def test_existing_run_is_not_damaged(cli, tiny_run):
    before = file_hashes(tiny_run)
    assert_refused(cli("distill", "--out", tiny_run), "already holds a run")
    assert_refused(cli("distill", "--resume", tiny_run, "--epochs", "3"), "--resume")
    assert file_hashes(tiny_run) == before


def test_resume_of_something_that_is_not_a_run(cli, tmp_path):
    assert_refused(cli("distill", "--resume", tmp_path), "not an edgekd run")


def test_unknown_method_option(cli):
    assert_refused(cli("distill", "--option", "kd.temprature=3", *TINY), "has no option 'temprature'", "temperature")


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


def test_bench_of_a_run_without_exports(cli, tiny_run):
    assert_refused(cli("bench", tiny_run, "--target", "raspberry-pi-4"), "no exported artifacts")


def test_unknown_target(cli, exported_run):
    assert_refused(cli("bench", exported_run, "--target", "raspberry-pi-9"), "unknown target", "raspberry-pi-4")
    assert_refused(cli("bench", exported_run, "--target", "pi4", "--port", "2222"), "give --remote user@host too")


def test_out_is_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("x")
    assert_refused(cli("distill", *TINY, "--out", tmp_path / "f"), "is a file")


def test_zero_validation_fraction(cli):
    assert_refused(cli("distill", "--set", "data.val_fraction=0"), "val_fraction")


def test_dml_with_a_teacher_method(cli):
    assert_refused(cli("distill", "--method", "dml", "--method", "kd", *TINY), "without a teacher")


def test_target_name_cannot_escape_the_run(cli, exported_run, tmp_path):
    bad = (Path(__file__).parent.parent / "targets" / "raspberry-pi-4.toml").read_text()
    bad = bad.replace('name = "raspberry-pi-4"', 'name = "../manifest"').replace('aliases = ["raspberry-pi", "rpi4", "pi4"]', "")
    (tmp_path / "evil.toml").write_text(bad)
    before = (exported_run / "manifest.json").read_bytes()
    assert_refused(cli("bench", exported_run, "--target", tmp_path / "evil.toml"), "must be letters")
    assert (exported_run / "manifest.json").read_bytes() == before


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
    (["--student", "transformer"], ["unknown model family 'transformer'"]),
    (["--depth", "-1"], ["student.depth"]),
    (["--method", "fitnet", "--hint-layer", "nope"], ["no module 'nope'"]),
])
def test_bad_settings_are_refused_before_any_training(cli, args, words, tmp_path):
    # the run directory is made just before the teacher trains: its absence proves nothing trained
    assert_refused(cli("distill", *TINY, *args, "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content,words", [
    (b"", ["is empty"]),
    (bytes(range(256)) * 8, ["corrupt"]),  # random bytes are not "a pickle with code"
])
def test_unreadable_teacher_file(cli, content, words, tmp_path):
    (tmp_path / "t.pt").write_bytes(content)
    assert_refused(cli("distill", "--teacher", tmp_path / "t.pt", "--out", tmp_path / "r"), *words)
    assert not (tmp_path / "r").exists()


def test_incomplete_model_file(cli, tmp_path):
    arch = {"family": "cnn", "width": 4, "depth": 2, "input_shape": [40], "classes": 10}
    torch.save({"format": "edgekd-model-1", "arch": arch}, tmp_path / "t.pt")
    assert_refused(cli("distill", "--teacher", tmp_path / "t.pt"), "incomplete", "state_dict")


def test_plugin_that_is_not_python(cli, tmp_path):
    (tmp_path / "loss.toml").write_text("x = 1\n")
    assert_refused(cli("methods", "--plugin", tmp_path / "loss.toml"), "not a Python file")


def test_empty_checkpoint_on_resume(cli, tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "gen-2" / "eval.json").unlink()  # gen-2 unfinished, and its checkpoint lost to a crash
    (run / "gen-2" / "checkpoint.pt").write_bytes(b"")
    assert_refused(cli("distill", "--resume", run, "-q"), "checkpoint.pt", "empty")


def test_damaged_run_files_are_named(cli, damaged):
    import json

    metrics = damaged("metrics")
    with open(metrics / "gen-1" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val')
    assert_refused(cli("report", metrics), "metrics.jsonl line", "not valid JSON")
    bench = damaged("bench")
    (bench / "bench").mkdir(exist_ok=True)
    (bench / "bench" / "raspberry-pi-4.json").write_text("[]")
    assert_refused(cli("report", bench), "raspberry-pi-4.json", "not an edgekd bench result")
    manifest = damaged("manifest")
    data = json.loads((manifest / "manifest.json").read_text())
    del data["members"]
    (manifest / "manifest.json").write_text(json.dumps(data))
    before = file_hashes(manifest)
    for command in (["report", manifest], ["export", manifest], ["bench", manifest, "-t", "pi4"],
                    ["distill", "--resume", manifest]):
        assert_refused(cli(*command), "manifest.json is damaged", "members")
    assert file_hashes(manifest) == before


def test_compare_into_a_file(cli, exported_run, tiny_run, tmp_path):
    (tmp_path / "f").write_text("keep")
    assert_refused(cli("compare", exported_run, tiny_run, "--out", tmp_path / "f"), "is a file")
    assert (tmp_path / "f").read_text() == "keep"
    assert_refused(cli("compare", exported_run, tiny_run, "--out", tmp_path / "f" / "sub"), "cannot write the comparison")


def test_bench_reports_damaged_artifacts_per_row(cli, damaged):
    import json

    run = damaged("artifacts")
    (run / "gen-1" / "model.onnx").write_bytes(b"garbage")   # its prediction reads this graph
    (run / "gen-2" / "model.int8.onnx").unlink()
    (run / "bench").mkdir(exist_ok=True)
    (run / "bench" / "inputs.npz").write_bytes(b"x")          # a damaged cache is rebuilt
    code, out, err = cli("bench", run, "-t", "pi4", "--runtime", "onnxruntime", "--processes", "1",
                         "--min-seconds", "0.01", "--json")
    assert code == 1 and "2 bench rows failed" in err, err  # the others are measured; a script still notices
    rows = {(r["member"], r["artifact"]): r for r in json.loads(out)["raspberry-pi-4"]["rows"]}
    assert "changed since it was exported" in rows["gen-1", "onnx-fp32"]["error"]  # not timed: not what was verified
    assert "gen-2/model.int8.onnx is missing" in rows["gen-2", "onnx-int8"]["error"]
    assert rows["gen-1", "onnx-int8"]["p50_ms"] > 0 and "cannot be read" in rows["gen-1", "onnx-int8"]["prediction_error"]
    assert rows["gen-2", "onnx-fp32"]["predicted"]["p50_ms"] > 0
    with np.load(run / "bench" / "inputs.npz") as cached:
        assert len(cached["x"]) == len(cached["y"]) > 0
    code, out, err = cli("bench", run, "-t", "pi4", "--runtime", "torch", "--processes", "1", "--min-seconds", "0.01",
                         "--json")
    assert code == 0, err  # a narrower bench keeps the good rows, never the failures
    again = json.loads(out)["raspberry-pi-4"]
    assert again["kept_rows"] == 2 and not any("error" in r for r in again["rows"])


def test_students_set_the_chain_length_next_to_a_recipe_file(cli, tmp_path):
    (tmp_path / "plain.toml").write_text("[train]\nepochs = 1\n")
    # a later check (the hint layer) fails: the student count was accepted as the chain length
    assert_refused(cli("distill", "--config", tmp_path / "plain.toml", "--students", "cnn:4, cnn:2, ", "--method",
                        "fitnet", "--hint-layer", "nope", "--out", tmp_path / "r"), "no module 'nope'")
    (tmp_path / "three.toml").write_text("[chain]\ngenerations = 3\n")
    assert_refused(cli("distill", "--config", tmp_path / "three.toml", "--students", "cnn:4,cnn:2",
                        "--out", tmp_path / "r"), "lists 2 architectures for 3 generations")


def test_export_and_bench_refuse_data_changed_since_training(cli, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.normal(size=(300, 16)).astype(np.float32), y=np.arange(300) % 3)
    code, out, err = cli("distill", "--data", f"npz:{data}", "--chain", "1", "--set", "teacher.width=8",
                         "--set", "teacher.epochs=1", "--set", "train.epochs=1", "--no-baseline", "--no-export",
                         "--out", tmp_path / "run", "-q")
    assert code == 0, err
    np.savez(data, x=rng.normal(size=(300, 16)).astype(np.float32), y=np.arange(300) % 4)  # rewritten since
    before = file_hashes(tmp_path / "run")
    assert_refused(cli("export", tmp_path / "run"), "has changed since", "trained")
    assert_refused(cli("distill", "--resume", tmp_path / "run"), "has changed since", "trained")
    assert file_hashes(tmp_path / "run") == before


def test_long_library_messages_are_cut_at_a_word():
    from edgekd.errors import reason

    text = reason(ValueError("Weights only load failed. " + "In PyTorch 2.6 we changed the default " * 10), 60)
    assert text == "Weights only load failed. In PyTorch 2.6 we changed the…"
    assert reason(ValueError("short"), 60) == "short"
