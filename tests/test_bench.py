"""Bench: artifacts measured in fresh processes on the host and predicted for a target; a narrower bench keeps
the earlier rows; a damaged artifact fails its own row; unknown targets and runs without exports are refused."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from conftest import assert_refused


def test_bench_on_host_is_measured_and_torch_alone_can_run(cli, exported_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    code, out, err = cli("bench", root, "-t", "host", "--runtime", "torch", "--processes", "1",
                         "--min-seconds", "0.01", "--json")
    assert code == 0, err
    result = json.loads(out)["host"]
    assert {r["artifact"] for r in result["rows"]} == {"torch-fp32"} and len(result["rows"]) == 2
    assert all(r["p50_ms"] > 0 and "predicted" not in r for r in result["rows"])
    assert result["prediction_method"] is None
    code, out, err = cli("report", root, "--within", "nan")
    assert code == 2 and "--within" in err


def _export(root, *flags):
    """Export in a fresh process: OpenVINO names IR nodes by a per-process counter, so only a
    process's first export gives the same bytes every time."""
    import sys

    done = subprocess.run([sys.executable, "-m", "edgekd", "export", str(root), "-q", *flags], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_narrower_bench_keeps_earlier_rows_and_report_drops_stale_ones(cli, tiny_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    _export(root, "--format", "openvino")  # builds model.onnx too, as OpenVINO's source
    fast = ("--processes", "1", "--min-seconds", "0.01", "--json")
    code, out, err = cli("bench", root, "-t", "pi4", "--runtime", "onnxruntime", *fast)
    assert code == 0, err
    first = json.loads(out)["raspberry-pi-4"]["rows"]
    assert {r["artifact"] for r in first} == {"onnx-fp32"} and all(r["sha256"] for r in first)
    code, out, err = cli("bench", root, "-t", "pi4", "--runtime", "openvino", *fast)
    assert code == 0, err
    second = json.loads(out)["raspberry-pi-4"]
    assert second["kept_rows"] == len(first)
    kept = [r for r in second["rows"] if r["runtime"] == "onnxruntime"]
    assert [{k: v for k, v in r.items() if k != "earlier"} for r in kept] == [{**r, "kept": True} for r in first]
    assert all(r["earlier"]["min_seconds"] == 0.01 and r["earlier"]["peak_gflops_fp32"] > 0 for r in kept)
    assert {r["artifact"] for r in second["rows"] if "kept" not in r} == {"openvino-fp32", "openvino-fp16",
                                                                          "openvino-int8"}
    code, out, err = cli("report", root, "--json")
    assert code == 0 and not any("re-exported" in m for m in json.loads(out)["missing"])
    for gen in ("gen-1", "gen-2"):  # the OpenVINO artifacts are deleted, so the export cannot keep them
        shutil.rmtree(root / gen / "openvino")
    _export(root, "--format", "onnx", "--no-int8")  # model.onnx is rebuilt the same
    code, out, err = cli("report", root, "--json")
    assert code == 0, err
    rows = [r for r in json.loads((root / "report" / "results.json").read_text())["rows"] if r["target"]]
    assert sorted((r["member"], r["artifact"]) for r in rows) == [("gen-1", "onnx-fp32"), ("gen-2", "onnx-fp32")]
    assert any(m.startswith("6 raspberry-pi-4 bench rows, left out") for m in json.loads(out)["missing"])
    path = root / "bench" / "raspberry-pi-4.json"
    elsewhere = json.loads(path.read_text())
    elsewhere["host"]["cpu"] = "another CPU"  # rows measured on another machine are not mixed in
    path.write_text(json.dumps(elsewhere))
    code, out, err = cli("bench", root, "-t", "pi4", "--runtime", "torch", *fast)
    assert code == 0 and json.loads(out)["raspberry-pi-4"]["kept_rows"] == 0
    assert "dropped 2 row(s) of the earlier raspberry-pi-4 bench, measured with a different machine" in err


def test_unstable_when_most_runs_are_slower_than_the_fastest():
    from edgekd.bench.local import aggregate

    run = {"p90_ms": 1.2, "p99_ms": 1.5, "mean_ms": 1.1, "first_ms": 3.0, "load_ms": 5.0, "throughput_per_s": 900.0,
           "peak_rss_delta_mb": 1.0, "peak_rss_mb": 50.0, "runtime_import_mb": 20.0, "accuracy": 0.9,
           "iterations": 100, "warmup": 10, "batch": 1, "settings": {}}
    steady = aggregate([{**run, "p50_ms": 1.0, "min_ms": 0.9}])
    assert not steady["unstable"] and steady["processes"] == 1
    preempted = aggregate([{**run, "p50_ms": 20.0, "min_ms": 0.16}])  # one process, mostly descheduled
    assert preempted["unstable"] and "fastest run" in preempted["unstable_reason"]
    spread = aggregate([{**run, "p50_ms": 1.0, "min_ms": 0.9}, {**run, "p50_ms": 1.6, "min_ms": 0.9}])
    assert spread["unstable"] and "between processes" in spread["unstable_reason"]
    tail = aggregate([{**run, "p50_ms": 0.3, "min_ms": 0.28, "p90_ms": 72.0}])  # a tenth of the runs preempted
    assert tail["unstable"] and tail["unstable_reason"] == "p90 240x the median"


def test_the_native_column_is_the_median_of_every_process():
    """One benchmark_app process can sit 1.5x from the next (where its threads land): the
    column takes each process's median, as the Python figures do, not the first one's."""
    from edgekd.bench.local import aggregate

    run = {"p50_ms": 0.05, "p90_ms": 0.06, "p99_ms": 0.07, "mean_ms": 0.05, "min_ms": 0.04, "first_ms": 1.0,
           "load_ms": 5.0, "throughput_per_s": 2e4, "peak_rss_delta_mb": 1.0, "peak_rss_mb": 50.0,
           "runtime_import_mb": 20.0, "accuracy": 0.9, "iterations": 100, "warmup": 10, "batch": 1, "settings": {}}
    native = {"runs": 1000, "seconds": 1, "command": "benchmark_app -m m.xml", "tool": "benchmark_app"}
    row = aggregate([{**run, "native": {**native, "p50_ms": p}} for p in (0.040, 0.026, 0.039)])
    assert row["native_p50_ms"] == 0.039 and row["native_p50s_ms"] == [0.040, 0.026, 0.039]
    assert row["native_runs"] == 3000 and row["native_seconds"] == 3
    failed = aggregate([{**run, "native": {"error": "benchmark_app exited 1: no"}}])
    assert failed["native_error"] == "benchmark_app exited 1: no" and "native_p50_ms" not in failed


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
    assert rows["gen-1", "onnx-int8"]["p50_ms"] > 0
    assert "cannot be read" in rows["gen-1", "onnx-int8"]["prediction_error"]
    assert rows["gen-2", "onnx-fp32"]["predicted"]["p50_ms"] > 0
    with np.load(run / "bench" / "inputs.npz") as cached:
        assert len(cached["x"]) == len(cached["y"]) > 0
    code, out, err = cli("bench", run, "-t", "pi4", "--runtime", "torch", "--processes", "1", "--min-seconds", "0.01",
                         "--json")
    assert code == 0, err  # a narrower bench keeps the good rows, never the failures
    again = json.loads(out)["raspberry-pi-4"]
    assert again["kept_rows"] == 2 and not any("error" in r for r in again["rows"])


def test_bench_of_a_run_without_exports(cli, tiny_run):
    assert_refused(cli("bench", tiny_run, "--target", "raspberry-pi-4"), "no exported artifacts")


def test_a_run_killed_before_its_first_generation_points_to_resume(cli, tiny_run, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(tiny_run, half)
    manifest = json.loads((half / "manifest.json").read_text())
    manifest["members"] = {k: v for k, v in manifest["members"].items() if not k.startswith(("gen-", "baseline-"))}
    (half / "manifest.json").write_text(json.dumps(manifest))
    for command in (("export",), ("bench", "--target", "raspberry-pi-4")):
        assert_refused(cli(command[0], half, *command[1:]), "no finished generation",
                       "edgekd distill --resume")


def test_unknown_target(cli, exported_run):
    assert_refused(cli("bench", exported_run, "--target", "raspberry-pi-9"), "unknown target", "raspberry-pi-4")
    assert_refused(cli("bench", exported_run, "--target", "pi4", "--port", "2222"), "give --remote user@host too")


def test_target_name_cannot_escape_the_run(cli, exported_run, tmp_path):
    bad = (Path(__file__).parent.parent / "targets" / "raspberry-pi-4.toml").read_text()
    bad = bad.replace('name = "raspberry-pi-4"', 'name = "../manifest"')
    bad = bad.replace('aliases = ["raspberry-pi", "rpi4", "pi4"]', "")
    (tmp_path / "evil.toml").write_text(bad)
    before = (exported_run / "manifest.json").read_bytes()
    assert_refused(cli("bench", exported_run, "--target", tmp_path / "evil.toml"), "must be letters")
    assert (exported_run / "manifest.json").read_bytes() == before


def test_native_column_times_openvino_rows_with_benchmark_app(cli, exported_run, tmp_path):
    from edgekd.runtimes.openvino import native_tool

    if native_tool() is None:
        import pytest

        pytest.skip("benchmark_app is not installed beside this Python")
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    code, out, err = cli("bench", root, "-t", "host", "--runtime", "openvino", "--runtime", "onnxruntime",
                         "--native", "--processes", "1", "--min-seconds", "0.05")
    assert code == 0 and "native p50 ms" in out, err
    result = json.loads((root / "bench" / "host.json").read_text())
    assert result["settings"]["native"] is True and result["notes"] == []
    for row in result["rows"]:
        if row["runtime"] == "openvino":
            assert 0 < row["native_p50_ms"] < 1000 and row["native_runs"] > 0, row
            assert row["native_command"].startswith("benchmark_app -m ") and "openvino/model" in row["native_command"]
            assert f"-nthreads {result['settings']['threads']}" in row["native_command"]
        else:  # ONNX Runtime ships no native benchmark tool in its wheel: no column, no note
            assert not any(k.startswith("native_") for k in row), row


def test_native_column_absent_without_benchmark_app(tmp_path, monkeypatch):
    """A Python with no benchmark_app beside it or on PATH (as on a board with only the openvino
    runtime): the row is measured as always, with one reason instead of a native figure."""
    import sys

    import torch

    from edgekd.bench import runner
    from edgekd.bench.local import aggregate
    from edgekd.bench.pipeline import _native_notes
    from edgekd.runtimes import RUNTIMES, ExportContext, openvino
    from edgekd.runtimes.onnx import export_fp32

    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    export_fp32(ExportContext(model, (8,), None, None, tmp_path / "model.onnx"))
    openvino.convert_fp32(ExportContext(model, (8,), None, tmp_path / "model.onnx", tmp_path / "model.xml"))
    np.savez(tmp_path / "inputs.npz", x=np.zeros((4, 8), np.float32), y=np.zeros(4, int))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))  # nothing beside it
    monkeypatch.setenv("PATH", str(tmp_path))
    measured = runner.measure(str(tmp_path / "model.xml"), str(RUNTIMES["openvino"].opener), ["openvino"], 1,
                              str(tmp_path / "inputs.npz"), min_iters=5, min_seconds=0.0, native=True)
    row = aggregate([measured])
    assert row["p50_ms"] > 0 and "native_p50_ms" not in row
    assert "benchmark_app not found" in row["native_missing"]
    assert _native_notes([row, dict(row)]) == [f"no native column: {row['native_missing']}"]  # once, not per row
