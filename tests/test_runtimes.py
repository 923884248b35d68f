"""ncnn, the third runtime: pnnx export, verification in ncnn's own Python runtime, the bench
harness in fresh processes, and the table entries that make it one module + its entries."""

import json
import shutil

import numpy as np
import pytest
import torch

from edgekd import runtimes
from edgekd.export.verify import AGREEMENT_ROWS, agreement_inputs, verify
from edgekd.models import ArchSpec, build
from edgekd.runtimes import ncnn as ncnn_runtime

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")


@pytest.fixture(scope="module")
def ncnn_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run exported to ONNX fp32 and ncnn (fp32, fp16)."""
    from edgekd.export.pipeline import export_run

    root = tmp_path_factory.mktemp("ncnn") / "run"
    shutil.copytree(tiny_run, root)
    export_run(root, formats=("onnx", "ncnn"), int8=False)
    return root


@pytest.mark.slow
def test_every_generation_exports_to_ncnn_and_verifies_in_ncnn(ncnn_run):
    manifest = json.loads((ncnn_run / "manifest.json").read_text())
    for gen in ("gen-1", "gen-2"):
        arts = manifest["members"][gen]["artifacts"]
        assert set(arts) == {"onnx-fp32", "ncnn-fp32", "ncnn-fp16"}
        validation = json.loads((ncnn_run / gen / "export" / "validation.json").read_text())
        for name in ("ncnn-fp32", "ncnn-fp16"):
            v = validation[name]
            assert v["passed"], v["problems"]
            assert v["runtime"] == "ncnn" and v["outputs"] == ["logits"]
            assert v["batch_1_shape"] == [1, 10] and v["batch_7_shape"] == [7, 10]  # sample by sample, stacked
            assert (ncnn_run / v["file"]).is_file() and (ncnn_run / v["file"]).with_suffix(".bin").is_file()
        # fp32 in ncnn computes what ONNX Runtime computes: the same predictions on the test set
        assert validation["ncnn-fp32"]["max_abs_diff"] <= validation["ncnn-fp32"]["limit"]
        assert arts["ncnn-fp32"]["accuracy"] == arts["onnx-fp32"]["accuracy"]
        # fp16 storage halves the weights file (biases included), not the graph text
        assert arts["ncnn-fp16"]["weight_bytes"] < 0.6 * arts["ncnn-fp32"]["weight_bytes"]
        assert validation["ncnn-fp16"]["weights"] == "fp16" and validation["ncnn-fp32"]["weights"] == "fp32"
    recipe = manifest["recipe"]["export"]
    assert recipe["formats"] == ["onnx", "ncnn"] and not recipe["int8"]


@pytest.mark.slow
def test_bench_measures_ncnn_in_fresh_processes_and_predicts_the_board(ncnn_run, cli, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(ncnn_run, root)
    code, out, err = cli("bench", root, "--target", "raspberry-pi-4", "--runtime", "ncnn", "--processes", "2",
                         "--min-seconds", "0.05", "--json")
    assert code == 0, err
    rows = json.loads(out)["raspberry-pi-4"]["rows"]
    assert {(r["member"], r["artifact"]) for r in rows} == {(g, k) for g in ("gen-1", "gen-2")
                                                             for k in ("ncnn-fp32", "ncnn-fp16")}
    manifest = json.loads((root / "manifest.json").read_text())
    for r in rows:
        assert "error" not in r, r
        assert r["runtime"] == "ncnn" and r["settings"]["runtime"] == "ncnn" and r["processes"] == 2
        assert r["runtime_on_target"] and r["verified"]  # the Pi 4 profile lists ncnn
        assert r["predicted"]["low_ms"] <= r["predicted"]["p50_ms"] <= r["predicted"]["high_ms"]
        # measured by the runner in its own process: the accuracy the export measured in-process
        assert r["accuracy"] == manifest["members"][r["member"]]["artifacts"][r["artifact"]]["accuracy"]
    code, out, err = cli("report", root, "-q")
    assert code == 0, err
    assert (root / "report" / "plots" / "latency_vs_accuracy_raspberry-pi-4.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("spec", [
    ArchSpec("cnn", 8, 3, (3, 12, 12), 5, 0.3, 2.0),                                  # an image CNN
    ArchSpec("mlp", 16, 2, (4,), 3, (1.0, -2.0, 30.0, 0.0), (1.0, 0.1, 10.0, 1.0)),  # per-column statistics
], ids=["image-cnn", "table-mlp"])
def test_ncnn_export_verifies_images_and_tables(spec, tmp_path):
    """Shapes the tiny run does not have: (C, H, W) images and (F,) rows standardized per column."""

    torch.manual_seed(0)
    model = build(spec).eval()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, *spec.input_shape)) * 3).astype(np.float32)
    with torch.inference_mode():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    kind = runtimes.kind("ncnn-fp32")
    out = tmp_path / kind.file
    info = kind.build(runtimes.ExportContext(model, spec.input_shape, None, None, out))
    assert info["weights"] == "fp32"

    @torch.inference_mode()
    def torch_predict(a):
        return model(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    record = verify(out, kind, torch_predict, x[:16], np.concatenate([x, x[::-1]]), y, spec.classes, threads=1)
    assert record["passed"], record["problems"]
    assert record["accuracy"] == 1.0  # labels are torch's own predictions, scored on the first len(y) rows
    assert record["agreement_rows"] == 2 * len(y)  # agreement needs no labels: every row given


def test_agreement_is_checked_on_more_rows_than_a_small_test_set():
    test, val, train = (np.full((n, 3), i, np.float32) for i, n in enumerate((30, 20, 5000)))
    rows = agreement_inputs(test, val, train)
    assert len(rows) == AGREEMENT_ROWS and (rows[:30] == 0).all() and (rows[30:50] == 1).all()
    assert len(agreement_inputs(np.zeros((3000, 3)), val, train)) == 3000  # never fewer than the test rows


def test_param_blobs_are_renamed_to_the_artifact_names():
    param = ("7767517\n3 3\nInput in0 0 1 in0\nConvolution1D conv_0 1 1 in0 1 0=8 1=5\n"
             "InnerProduct linear_1 1 1 1 out0 0=10 1=1 2=80\n")
    renamed = ncnn_runtime._rename(param, {"in0": "input", "out0": "logits"})
    assert renamed.splitlines()[2] == "Input input 0 1 input"
    assert renamed.splitlines()[3] == "Convolution1D conv_0 1 1 input 1 0=8 1=5"
    assert renamed.splitlines()[4] == "InnerProduct linear_1 1 1 1 logits 0=10 1=1 2=80"


def test_a_file_that_is_not_a_param_is_refused(tmp_path):
    bad = tmp_path / "model.param"
    bad.write_text("not ncnn\n")
    with pytest.raises(ValueError, match="not an ncnn .param"):
        ncnn_runtime.output_names(str(bad))


def test_ncnn_without_its_extra_is_one_sentence(tiny_run, cli, monkeypatch):
    """`--format ncnn` where pnnx is not installed: refused before anything is written."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pnnx" else real(name, *a))
    before = (tiny_run / "manifest.json").read_bytes()
    code, out, err = cli("export", tiny_run, "--format", "ncnn")
    assert code == 2 and "--format ncnn: ncnn is not installed (pip install 'edgekd[ncnn]')" in err
    assert (tiny_run / "manifest.json").read_bytes() == before


def test_a_runtime_is_one_module_and_its_entries():
    """Every runtime module offers what the table calls, and imports only the standard library
    at module level (the bench copies it to a device that has no edgekd)."""
    import ast

    for runtime in runtimes.RUNTIMES.values():
        for name in ("open_model", "output_names"):
            assert callable(getattr(runtime.module, name)), (runtime.name, name)
        tree = ast.parse(runtime.opener.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top:
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for m in modules:
                assert m == "__future__" or m.split(".")[0] in __import__("sys").stdlib_module_names, \
                    f"{runtime.opener.name} imports {m} at module level"
    for kind in runtimes.KINDS.values():
        if kind.format.exported:
            assert kind.build is not None and kind.file and callable(kind.runtime.module.weight_bytes)
        assert kind.needs is None or runtimes.order(kind.needs) < runtimes.order(kind.name)  # built before


# Literals that equal a format, precision or runtime name but mean something else.
NOT_ARTIFACTS = {
    ("edgekd/distill/teachers.py", "onnx"),   # Teacher.kind: how a user's teacher is loaded, not an export
    ("edgekd/runs.py", "onnx"),               # TEACHER_FILES is keyed by Teacher.kind
    ("edgekd/export/pipeline.py", "int8"),    # the recipe key export.int8
    ("edgekd/pipeline.py", "int8"),
    ("edgekd/report/render.py", "torch"),     # the torch distribution's version in the method section
    ("edgekd/targets.py", "fp16"),            # a CPU feature (asimdhp) in a profile's SIMD list
    ("edgekd/recipe.py", "fp32"),             # TRAIN_PRECISIONS: training arithmetic (autocast), not an export
    ("edgekd/recipe.py", "fp16"),
}


def test_no_format_or_precision_is_spelled_outside_the_runtime_table():
    """What a runtime is lives in edgekd/runtimes; every other module reads it from there."""
    import ast
    from pathlib import Path

    package = Path(runtimes.__file__).parents[1]
    names = set(runtimes.FORMATS) | set(runtimes.PRECISIONS) | set(runtimes.RUNTIMES) | set(runtimes.KINDS)
    hits = []
    for path in sorted(package.rglob("*.py")):
        if "runtimes" in path.relative_to(package).parts:
            continue
        where = str(path.relative_to(package.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names and (where, node.value) not in NOT_ARTIFACTS:
                hits.append(f"{where}:{node.lineno}: {node.value!r}")
    assert hits == []
