"""Export: every artifact built, verified against torch and recorded; int8 sizes and accuracy; no network;
the same bytes on re-export; a narrower export keeps what it does not rebuild; failures named per artifact."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from edgekd import runtimes
from edgekd.export.pipeline import export_model
from edgekd.models import ArchSpec, build, count_params, families, load_model, register
from edgekd.runs import Run
from edgekd.runtimes.onnx import initializer_count

from conftest import assert_refused, file_hashes

ALL = ["onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-fp16", "openvino-int8"]


def test_every_artifact_is_built_verified_and_recorded(exported_run):
    run = Run.open(exported_run)
    for member in ("gen-1", "gen-2"):
        validation = json.loads(run.validation_path(member).read_text())
        assert sorted(validation) == sorted(ALL)
        for name, record in validation.items():
            assert record["passed"], (member, name, record)
            assert record["batch_1_shape"] == [1, 10] and record["batch_7_shape"] == [7, 10]  # dynamic batch
            assert record["outputs"] == ["logits"]
            assert record["max_abs_diff"] <= record["limit"]
            assert record["bytes"] > 0 and len(record["sha256"]) == 64
        fp32 = validation["onnx-fp32"]
        assert fp32["max_abs_diff"] < 1e-3 and fp32["agreement"] == 1.0
        assert validation["openvino-fp32"]["settings"]["inference_precision"] == "f32"  # not the bf16 default
        assert validation["openvino-fp32"]["weights"] == "fp32" and validation["openvino-fp16"]["weights"] == "fp16"
        artifacts = run.manifest()["members"][member]["artifacts"]
        assert artifacts["openvino-fp32"]["bytes"] == sum(
            (exported_run / member / "openvino" / f).stat().st_size for f in ("model.xml", "model.bin"))


def test_int8_shrinks_the_weights_even_where_the_file_grows(exported_run):
    # these models have a few thousand parameters: the file is mostly graph, the constants are what int8 shrinks
    for member in ("gen-1", "gen-2"):
        a = Run.open(exported_run).manifest()["members"][member]["artifacts"]
        for fmt in ("onnx", "openvino"):
            fp32, int8 = a[f"{fmt}-fp32"]["weight_bytes"], a[f"{fmt}-int8"]["weight_bytes"]
            assert 0 < int8 < fp32, (member, fmt, fp32, int8)
            assert fp32 <= a[f"{fmt}-fp32"]["bytes"] and int8 <= a[f"{fmt}-int8"]["bytes"]
        # two independent counts of the same fp32 constants: ONNX initializers and the IR's .bin
        onnx, ir = a["onnx-fp32"]["weight_bytes"], a["openvino-fp32"]["weight_bytes"]
        assert abs(onnx - ir) <= 0.1 * onnx


def test_int8_accuracy_close_to_fp32(exported_run):
    for member in ("gen-1", "gen-2"):
        v = json.loads(Run.open(exported_run).validation_path(member).read_text())
        for fmt in ("onnx", "openvino"):
            assert abs(v[f"{fmt}-int8"]["accuracy"] - v[f"{fmt}-fp32"]["accuracy"]) <= 0.03


def test_exported_graph_holds_only_the_student(exported_run):
    student, _ = load_model(exported_run / "gen-2" / "model.pt")
    teacher, _ = load_model(exported_run / "teacher" / "model.pt")
    stored = initializer_count(exported_run / "gen-2" / "model.onnx")
    # batch norm is folded into the convolutions, so the graph holds at most the student's values
    assert 0 < stored <= count_params(student) + 2
    assert stored < count_params(teacher) / 4


def test_onnx_runs_standalone_on_raw_inputs(exported_run):
    import onnxruntime as ort

    from edgekd.data import load_splits

    s = load_splits("mnist1d")
    session = ort.InferenceSession(str(exported_run / "gen-1" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": s.x_test[:50]})[0]
    student, _ = load_model(exported_run / "gen-1" / "model.pt")
    np.testing.assert_allclose(logits, student(torch.from_numpy(s.x_test[:50])).detach().numpy(), atol=1e-4)


class Spectral(torch.nn.Module):
    """A student whose FFT the ONNX exporter cannot handle."""

    def __init__(self, spec):
        super().__init__()
        self.head = torch.nn.Linear(spec.input_shape[0] // 2 + 1, spec.classes)

    def forward(self, x):
        return self.head(torch.fft.rfft(x).abs())


def test_broken_export_is_reported_without_losing_the_rest(tiny_run, tmp_path, cli, monkeypatch):
    from edgekd.models import ArchSpec, registry, save_model

    # the family registry is process-global: register into a copy that is thrown away after the test
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    register("spectral-test")(Spectral)
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    spec = ArchSpec("spectral-test", 1, 1, (40,), 10)
    save_model(Spectral(spec), spec, root / "gen-2" / "model.pt")
    weights = (root / "gen-2" / "model.pt").read_bytes()
    blocked = root / "gen-1" / "openvino" / "model.fp16.xml"
    blocked.mkdir(parents=True)  # a directory where the fp16 IR must go: that artifact cannot be written
    code, out, err = cli("export", root, "--calibration", "64", "--json")
    assert code == 1
    assert "gen-2/onnx-fp32" in err and "gen-1/openvino-fp16" in err
    rows = {(r["member"], r["artifact"]): r for r in json.loads(out)}
    assert rows[("gen-2", "onnx-fp32")]["error"]
    assert "not built" in rows[("gen-2", "openvino-fp32")]["error"]
    for name in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8"):
        assert rows[("gen-1", name)]["passed"]
    assert (root / "gen-2" / "model.pt").read_bytes() == weights
    assert json.loads((root / "gen-2" / "export" / "validation.json").read_text())["onnx-fp32"]["passed"] is False


def calibrated(spec: ArchSpec, x: np.ndarray) -> torch.nn.Module:
    """An untrained model whose batch-norm statistics are those of `x` (one cumulative pass), as
    training would leave them, so its activations have the ranges int8 calibration sees in a run."""
    torch.manual_seed(0)
    model = build(spec).train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a cumulative average: one pass sets the statistics
    with torch.no_grad():
        model(torch.from_numpy(x))
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("shape", [(40,), (3, 12, 12)], ids=["signal", "image"])
def test_every_family_exports_and_verifies_in_every_format(family, shape, tmp_path):
    """Each registered family through the export the CLI runs: every kind built, verified against
    torch within its tolerance; int8 weights per output channel, depthwise convolutions included."""
    spec = ArchSpec(family, 8, 2, shape, 5, 0.3, 2.0)
    x = (np.random.default_rng(0).normal(size=(200, *shape)) * 2 + 0.3).astype(np.float32)
    model = calibrated(spec, x)
    with torch.inference_mode():
        y = model(torch.from_numpy(x)).argmax(1).numpy()  # labels: torch's own predictions
    formats = tuple(f for f in runtimes.EXPORT_FORMATS if runtimes.FORMATS[f].runtime.installed(converters=True))
    kinds = runtimes.exported_kinds(formats, int8=True)
    records = export_model(model, shape, kinds, tmp_path, x[:128], x[:64], x, y, spec.classes)
    assert list(records) == [k.name for k in kinds]
    for name, r in records.items():
        assert r["passed"], (family, name, r.get("error") or r["problems"])
    grouped = sum(m.groups > 1 for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)))
    assert onnx_int8_weight_scales(tmp_path / runtimes.kind("onnx-int8").file)["grouped"] == grouped
    assert openvino_int8_weight_scales(tmp_path / runtimes.kind("openvino-int8").file)["grouped"] == grouped


def onnx_int8_weight_scales(path) -> dict:
    """Asserts that every Conv's weight is dequantized per output channel (quantize_static
    per_channel=True: a scale per filter, depthwise ones too); counts the grouped Convs."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    grouped = 0
    for node in (n for n in graph.node if n.op_type == "Conv"):
        dequantize = producer[node.input[1]]
        assert dequantize.op_type == "DequantizeLinear", node.name
        weight, scale = values[dequantize.input[0]], values[dequantize.input[1]]
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],), (node.name, scale.shape)
        grouped += any(a.name == "group" and a.i > 1 for a in node.attribute)
    return {"grouped": grouped}


def openvino_int8_weight_scales(path) -> dict:
    """NNCF quantizes convolution weights per output channel, symmetric int8, by default, and
    a depthwise convolution (OpenVINO's GroupConvolution) is no exception: its weights come
    through Multiply(Convert(i8 constant), scale) with one scale per channel (group)."""
    import openvino as ov

    grouped = 0
    for op in ov.Core().read_model(str(path)).get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        multiply = op.input_value(1).get_node()
        assert multiply.get_type_name() == "Multiply", op.get_friendly_name()
        constant = multiply.input_value(0).get_node().input_value(0).get_node()
        assert constant.get_element_type() == ov.Type.i8
        weights, scale = (tuple(multiply.input_value(i).get_shape()) for i in (0, 1))
        assert scale[0] == weights[0] > 1 and all(d == 1 for d in scale[1:]), (op.get_friendly_name(), scale)
        grouped += op.get_type_name() == "GroupConvolution"
    return {"grouped": grouped}


def test_export_bad_input(cli, tmp_path, tiny_run):
    code, _, err = cli("export", tmp_path)
    assert code == 2 and "not an edgekd run" in err
    code, _, err = cli("export", tiny_run, "--format", "tflite")
    assert code == 2 and "unknown export format" in err


@pytest.mark.slow
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


NETWORK_PROBE = textwrap.dedent("""
    import os, sys
    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
            with open(os.environ["PROBE_LOG"], "a") as f:
                f.write(f"{os.getpid()} {event} {args!r}\\n")
    sys.addaudithook(hook)   # inherited by forked children, where the telemetry sender runs
    if sys.argv[1] == "edgekd":
        from edgekd.export.pipeline import export_run
        export_run(sys.argv[2], calibration=64)
    else:  # the control: the same OpenVINO + NNCF calls without edgekd's opt-out
        import numpy as np, nncf, openvino as ov
        model = ov.convert_model(sys.argv[2] + "/gen-1/model.onnx")
        nncf.quantize(model, nncf.Dataset([np.zeros((1, 40), np.float32)] * 4), subset_size=4)
    import time; time.sleep(1.5)   # give any background sender time to try
""")


def test_export_and_openvino_open_no_connection(exported_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    (tmp_path / "probe.py").write_text(NETWORK_PROBE)
    logs = {}
    for mode in ("control", "edgekd"):
        home = tmp_path / f"home-{mode}"
        home.mkdir()  # a fresh home: no earlier opt-out decision is lying around
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "NNCF_CI")}
        env.update(HOME=str(home), PROBE_LOG=str(tmp_path / f"{mode}.log"))
        subprocess.run([sys.executable, str(tmp_path / "probe.py"), mode, str(root)], env=env, check=True,
                       capture_output=True, timeout=300)
        log = tmp_path / f"{mode}.log"
        logs[mode] = log.read_text() if log.exists() else ""
    assert logs["control"], "the control run made no connection attempt: this test would prove nothing"
    assert logs["edgekd"] == ""


def test_openvino_alone_builds_its_onnx_intermediate(tiny_run, tmp_path, cli):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    code, out, err = cli("export", root, "--format", "openvino", "--no-int8", "--json")
    assert code == 0, err
    names = {r["artifact"] for r in json.loads(out) if r["member"] == "gen-1"}
    assert {"openvino-fp32", "openvino-fp16"} <= names
    export = json.loads((root / "manifest.json").read_text())["recipe"]["export"]
    assert export["formats"] == ["openvino"] and not export["int8"]  # the ONNX intermediate widens nothing


def test_ir_bytes_do_not_depend_on_what_the_process_converted_before(exported_run, tmp_path):
    """OpenVINO names unnamed ops from a per-process counter; edgekd renames them by position,
    so re-exporting the same model writes the same bytes (bench rows stay current)."""
    from edgekd.runtimes import ExportContext
    from edgekd.runtimes.openvino import convert_fp32

    def ir(member: str, name: str) -> bytes:
        xml = tmp_path / name / "model.xml"
        convert_fp32(ExportContext(None, (), None, exported_run / member / "model.onnx", xml))
        return xml.read_bytes() + xml.with_suffix(".bin").read_bytes()

    first = ir("gen-2", "a")
    ir("gen-1", "other")  # moves the counter on
    assert ir("gen-2", "b") == first
    assert (exported_run / "gen-2" / "openvino" / "model.xml").read_bytes() + \
        (exported_run / "gen-2" / "openvino" / "model.bin").read_bytes() == first  # as the export wrote it


def test_export_reads_every_model_first_and_records_the_settings_it_used(tiny_run, tmp_path, cli):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    good = (root / "gen-2" / "model.pt").read_bytes()
    (root / "gen-2" / "model.pt").write_bytes(b"not a checkpoint")
    manifest = (root / "manifest.json").read_bytes()
    code, out, err = cli("export", root, "--format", "onnx")
    assert code == 2 and "gen-2" in err and "Traceback" not in err
    assert (root / "manifest.json").read_bytes() == manifest and not (root / "gen-1" / "model.onnx").exists()
    (root / "gen-2" / "model.pt").write_bytes(good)
    code, out, err = cli("export", root, "--format", "onnx", "--calibration", "100000", "-q")
    assert code == 0, err
    saved = json.loads((root / "manifest.json").read_text())
    rows = saved["data"]["train"]
    assert f"the training set has {rows} rows" in err
    assert saved["recipe"]["export"] == {**saved["recipe"]["export"], "formats": ["onnx"], "int8": True,
                                         "calibration": rows}
    assert saved["members"]["gen-1"]["artifacts"]["onnx-int8"]["passed"]


def test_a_narrower_export_keeps_the_earlier_artifacts_still_on_disk(exported_run, tmp_path, cli):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    before = json.loads((root / "manifest.json").read_text())["members"]["gen-1"]["artifacts"]
    (root / "gen-2" / "openvino" / "model.fp16.bin").unlink()  # gone: not kept
    code, out, err = cli("export", root, "--format", "onnx", "--no-int8")
    assert code == 0, err
    assert "kept from the earlier export" in out
    saved = json.loads((root / "manifest.json").read_text())
    assert saved["members"]["gen-1"]["artifacts"] == before  # rebuilt onnx-fp32 is byte-identical; the rest kept
    assert "openvino-fp16" not in saved["members"]["gen-2"]["artifacts"]
    assert "openvino-int8" in saved["members"]["gen-2"]["artifacts"]
    assert json.loads((root / "gen-1" / "export" / "validation.json").read_text()).keys() == before.keys()
    # a plain `edgekd export` rebuilds everything on disk: the recipe is widened by what was kept
    assert saved["recipe"]["export"]["formats"] == ["onnx", "openvino"] and saved["recipe"]["export"]["int8"]
    code, out, err = cli("export", root, "--format", "onnx", "--no-int8", "--json")
    assert code == 0, err
    kept = {(r["member"], r["artifact"]): r["kept"] for r in json.loads(out)}
    assert not kept["gen-1", "onnx-fp32"] and kept["gen-1", "openvino-fp32"] and kept["gen-2", "onnx-int8"]


def test_a_failed_verification_says_which_check_and_its_limit(exported_run, tmp_path, cli):
    from edgekd.data import load_splits
    from edgekd.export.verify import verify

    model, spec = load_model(exported_run / "gen-1" / "model.pt")
    splits = load_splits("mnist1d", 0.1, 0)

    def shifted(x):  # a "torch model" whose logits differ from the artifact's by 5 everywhere
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy() + 5.0

    record = verify(exported_run / "gen-1" / "model.onnx", runtimes.kind("onnx-fp32"), shifted, splits.x_val[:64],
                    splits.x_test[:200], splits.y_test[:200], 10, threads=1)
    assert not record["passed"]
    # argmax unchanged: agreement holds
    assert record["problems"] == [f"max |difference| 5 exceeds {record['limit']:.3g}"]
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    manifest = json.loads((root / "manifest.json").read_text())
    for gen in ("gen-1", "gen-2"):  # every artifact failed but the largest: the summary may only recommend that one
        for name, art in manifest["members"][gen]["artifacts"].items():
            if (gen, name) != ("gen-1", "openvino-fp32"):
                art.update(passed=False, problems=record["problems"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = cli("report", root, "--within", "99", "-q")
    assert code == 0, err
    summary = json.loads((root / "report" / "results.json").read_text())["summary"]
    assert "gen-1 openvino-fp32" in summary[0], summary
