"""Report and compare: the Pareto front, results.json, report.md and report.html with its plots, the summary's
fastest and budget lines, stale and unfinished runs; compare overlays runs over the same data."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekd.report.results import pareto

from conftest import assert_refused, read_only


def test_pareto_front():
    pts = [(1, 50), (2, 60), (2, 55), (3, 58), (4, 70), (0.5, 40), (4, 70)]
    front = pareto(pts)
    assert [pts[i] for i in front] == [(0.5, 40), (1, 50), (2, 60), (4, 70)]
    assert pareto([]) == []


def test_pareto_drops_equal_x_lower_y():
    assert pareto([(1, 5), (1, 9)]) == [1]


@pytest.fixture(scope="module")
def benched_run(exported_run, tmp_path_factory):
    from edgekd.bench.pipeline import bench_run

    root = tmp_path_factory.mktemp("benched") / "run"
    shutil.copytree(exported_run, root)
    bench_run(root, ["raspberry-pi-4"], processes=2, min_seconds=0.05)
    yield from read_only(root)


def test_bench_notes_and_intervals_read_plainly():
    from edgekd.report.render import bench_notes, predicted_ms

    assert predicted_ms({"p50_ms": 285.4, "low_ms": 114.2, "high_ms": 1684.0}) == "285 [114–1,684]"
    assert predicted_ms({"p50_ms": 0.0816, "low_ms": 0.0331, "high_ms": 0.2}) == "0.0816 [0.0331–0.2]"
    tiny = {"p50_ms": 0.0000123, "low_ms": 0.00000456, "high_ms": 0.00009}
    assert predicted_ms(tiny) == "0.0000123 [0.00000456–0.0000900]"
    row = {"runtime": "openvino", "runtime_on_target": False, "p50_ms": 0.02, "predicted": {"p50_ms": 6.0},
           "unstable": True, "unstable_reason": "median 4.0x the fastest run"}
    predicting = {"target": {"latency_budget_ms": 5.0}, "prediction_method": "roofline"}
    notes = bench_notes(row, predicting)
    assert notes == ["unstable: median 4.0x the fastest run", "openvino not on target", "over the 5 ms budget"]
    assert bench_notes({"p50_ms": 60.0}, predicting) == []  # no prediction: its host number is not the target's
    measured = {"target": {"latency_budget_ms": 10.0}, "prediction_method": None}
    assert bench_notes({"p50_ms": 6.0}, measured) == []  # measured on the target, within budget
    assert bench_notes({"p50_ms": 6.0, "verified": False}, measured) == ["failed verification against torch"]
    assert bench_notes({"p50_ms": 6.0}, {"target": {}, "prediction_method": None}) == []


def test_fastest_summary_picks_only_rows_that_could_ship(benched_run, tmp_path):
    import re

    from edgekd.report.render import build_report

    root = tmp_path / "run"
    shutil.copytree(benched_run, root)
    path = root / "bench" / "raspberry-pi-4.json"
    data = json.loads(path.read_text())
    rows = sorted((r for r in data["rows"] if "predicted" in r and r["artifact"] != "torch-fp32"),
                  key=lambda r: r["predicted"]["p50_ms"])
    assert len(rows) >= 4
    rows[0]["runtime_on_target"] = False  # the board cannot run it
    del rows[2]["predicted"]              # no prediction: its host number says nothing about the board
    rows[2]["p50_ms"] = 1e-6
    path.write_text(json.dumps(data))
    manifest = json.loads((root / "manifest.json").read_text())  # it disagreed with torch at export: the
    manifest["members"][rows[1]["member"]]["artifacts"][rows[1]["artifact"]]["passed"] = False  # row has no say
    (root / "manifest.json").write_text(json.dumps(manifest))
    summary = " ".join(build_report(root)["summary"])
    fast = re.search(r"Fastest on raspberry-pi-4 \(verified, in its runtimes\): (\S+) (\S+) at ([\d.]+) ms", summary)
    assert fast.groups()[:2] == (rows[3]["member"], rows[3]["artifact"]), summary


def test_report_keeps_rows_of_older_bench_files_and_drops_rows_of_members_gone(benched_run, tmp_path):
    from edgekd.report.results import collect

    root = tmp_path / "run"
    shutil.copytree(benched_run, root)
    path = root / "bench" / "raspberry-pi-4.json"
    data = json.loads(path.read_text())
    rows = [{k: v for k, v in r.items() if k != "sha256"} for r in data["rows"]]  # written before rows had hashes
    gone = {**rows[0], "member": "gen-9"}  # its directory is not in the manifest
    path.write_text(json.dumps({**data, "rows": rows + [gone]}))
    res = collect(root)
    assert res.bench["raspberry-pi-4"]["rows"] == rows and res.stale == {"raspberry-pi-4": 1}


def test_budget_summary_counts_what_the_row_notes_mark(benched_run, tmp_path):
    import re
    import statistics

    from edgekd.report.render import build_report

    root = tmp_path / "run"
    shutil.copytree(benched_run, root)
    path = root / "bench" / "raspberry-pi-4.json"
    data = json.loads(path.read_text())
    rows = [r for r in data["rows"] if "predicted" in r]
    data["target"]["latency_budget_ms"] = statistics.median(r["predicted"]["p50_ms"] for r in rows)
    del rows[0]["predicted"]  # as when a member's graph could not be read: not judged, no board latency
    path.write_text(json.dumps(data))
    summary = " ".join(build_report(root)["summary"])
    within, judged = map(int, re.search(r"(\d+) of (\d+) artifacts are within", summary).groups())
    table = (root / "report" / "report.md").read_text().split("## raspberry-pi-4")[1].split("##")[0]
    lines = [line for line in table.splitlines() if line.startswith("| gen-")]
    deployable = [line for line in lines if "not on target" not in line and line.split(" | ")[5] != "-"]
    assert judged == len(deployable) and 0 < within < judged
    assert judged - within == sum("over the" in line for line in deployable)


def test_report_files_and_results_schema(cli, benched_run, tmp_path):
    root = shutil.copytree(benched_run, tmp_path / "run")  # the report is written into the run
    code, out, err = cli("report", root, "--json")
    assert code == 0, err
    report = root / "report"
    for name in ("report.html", "report.md", "results.json", "plots/size_vs_accuracy.png", "plots/size_vs_accuracy.svg",
                 "plots/latency_vs_accuracy_raspberry-pi-4.png", "plots/chain.png", "plots/training_curves.png"):
        assert (report / name).is_file(), name
    results = json.loads((report / "results.json").read_text())
    assert results["schema"] == 1 and results["data"]["spec"] == "mnist1d"
    keys = {"member", "role", "artifact", "format", "precision", "size_bytes", "accuracy", "target",
            "latency_p50_ms", "predicted_p50_ms", "measured_on"}
    timed = [r for r in results["rows"] if r["target"] == "raspberry-pi-4"]
    assert timed and all(keys <= set(r) for r in timed)
    assert {(r["member"], r["artifact"]) for r in timed} >= {("gen-1", "onnx-fp32"), ("gen-2", "openvino-int8")}
    for r in timed:
        assert r["measured_on"] == "host" and r["latency_p50_ms"] > 0
        assert r["predicted_low_ms"] <= r["predicted_p50_ms"] <= r["predicted_high_ms"]
    roles = {r["role"] for r in results["rows"]}
    assert roles == {"teacher", "gen", "baseline"}
    md = (report / "report.md").read_text()
    assert "of the teacher" in md and "predicted" in md and "raspberry-pi-4" in md


def test_report_target_filter_takes_aliases_and_refuses_unbenchmarked_targets(cli, benched_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(benched_run, root)
    code, out, err = cli("report", root, "--target", "raspberry-pi")  # alias of raspberry-pi-4
    assert code == 0, err
    assert (root / "report" / "plots" / "latency_vs_accuracy_raspberry-pi-4.png").is_file()
    code, out, err = cli("report", root, "--target", "jetson-nano")
    assert code == 2 and "no benchmark for 'jetson-nano'" in err and "raspberry-pi-4" in err


def test_report_of_unbenchmarked_run_says_what_is_missing(cli, tiny_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    code, out, err = cli("report", root)
    assert code == 0, err
    assert "no exported artifacts" in out and "no benchmark results" in out
    assert (root / "report" / "report.html").is_file()


@pytest.mark.filterwarnings("error")  # matplotlib's empty-legend and log-scale warnings included
def test_report_of_a_run_with_no_finished_member(cli, tiny_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "members": {}}))
    code, out, err = cli("report", root)
    assert code == 0 and err == "", err
    assert "no exported artifacts" in out and (root / "report" / "plots" / "chain.png").is_file()


def test_report_of_missing_run(cli, tmp_path):
    code, out, err = cli("report", tmp_path / "nope")
    assert code == 2 and "does not exist" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(benched_run, tmp_path):
    import os

    if not CHROMIUM:
        if os.environ.get("EDGEKD_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from edgekd.report.render import build_report

    root = shutil.copytree(benched_run, tmp_path / "run")  # the report is written into the run
    build_report(root)
    page = root / "report" / "report.html"
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1100,3000", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    assert "Size vs accuracy" in dom and dom.count("data:image/png;base64,") >= 4
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] >= 1000
        colors = im.convert("RGB").resize((64, 192)).getcolors(64 * 192)
        assert colors is not None and len(colors) > 20  # a rendered page with plots, not a blank one
    # the images decode: the page's <img> elements report their natural size
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", "<script>document.title=[...document.images]"
                                              ".map(i=>i.naturalWidth).join(',')</script></body>"))
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    title = dom.split("<title>")[1].split("</title>")[0]
    widths = [int(w) for w in title.split(",")]
    assert len(widths) >= 4 and all(w > 100 for w in widths)
    probe.unlink()


def test_report_of_an_unfinished_run_says_so_and_keeps_no_stale_plots(cli, benched_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(benched_run, root)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))  # as after a kill
    stale = root / "report" / "plots" / "latency_vs_accuracy_jetson-nano.png"  # a target no longer benchmarked
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"old")
    code, out, err = cli("report", root, "--json")
    assert code == 0, err
    assert any("the run is not finished" in m and "--resume" in m for m in json.loads(out)["missing"])
    assert not stale.exists() and (root / "report" / "plots" / "latency_vs_accuracy_raspberry-pi-4.png").is_file()


# --- compare ----------------------------------------------------------------------------------------------------------


def test_compare_overlays_runs_and_lists_differences(cli, benched_run, tiny_run, tmp_path):
    code, out, err = cli("compare", benched_run, tiny_run, "--out", tmp_path / "cmp", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (tmp_path / "cmp" / "compare.html").is_file()
    assert (tmp_path / "cmp" / "plots" / "compare_size_vs_accuracy.png").is_file()
    assert len(result["runs"]) == 2
    for run in result["runs"]:  # numbers, each its run's own, not display strings
        members = json.loads((Path(run["path"]) / "manifest.json").read_text())["members"]
        assert run["teacher_acc"] == members["teacher"]["test_acc"]
        assert run["smallest"]["member"] == "gen-2" and isinstance(run["smallest"]["params"], int)
        assert run["smallest"]["test_acc"] == members["gen-2"]["test_acc"]
        base = members["baseline-2"]["test_acc"]
        assert run["gain_pts"] == pytest.approx(100 * (run["smallest"]["test_acc"] - base), abs=0.01)


def test_compare_labels_runs_that_share_a_name(cli, tiny_run, tmp_path):
    import shutil

    for parent in ("a", "b"):
        shutil.copytree(tiny_run, tmp_path / parent / "run")
    code, out, err = cli("compare", tmp_path / "a" / "run", tmp_path / "b" / "run", "--out", tmp_path / "cmp", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [run["run"] for run in result["runs"]] == [str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")]
    code, out, err = cli("compare", tiny_run, tiny_run, "--out", tmp_path / "cmp2")
    assert code == 2 and "same run twice" in err


def test_compare_refuses_runs_over_different_data(cli, tiny_run, tmp_path):
    from edgekd.distill.chain import distill
    from edgekd.recipe import from_dict

    other = tmp_path / "digits"
    distill(from_dict({"data": {"spec": "digits", "transfer": "0"}, "chain": {"generations": 1, "baseline": False},
                       "teacher": {"width": 8, "epochs": 1}, "train": {"epochs": 1}, "export": {"enabled": False}}),
            out=other)
    code, out, err = cli("compare", tiny_run, other, "--out", tmp_path / "cmp")
    assert code == 2 and "different data" in err and "--force" in err
    code, out, err = cli("compare", tiny_run, other, "--out", tmp_path / "cmp", "--force")
    assert code == 0, err


def test_compare_into_a_file(cli, exported_run, tiny_run, tmp_path):
    (tmp_path / "f").write_text("keep")
    assert_refused(cli("compare", exported_run, tiny_run, "--out", tmp_path / "f"), "is a file")
    assert (tmp_path / "f").read_text() == "keep"
    assert_refused(cli("compare", exported_run, tiny_run, "--out", tmp_path / "f" / "sub"),
                   "cannot write the comparison")
