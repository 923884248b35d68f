"""Latency and size budgets: the unit parser, the chain chosen from candidate measurements,
the verdict after training, bad input through the CLI, and one budgeted run end to end."""

import json

import pytest

from edgekd.distill.budget import (
    Budget,
    Candidate,
    closest,
    meeting_artifact,
    parse_size,
    recheck,
    select_chain,
    verdict,
)
from edgekd.distill.candidates import grid
from edgekd.errors import UserError

from conftest import TINY, assert_refused


@pytest.mark.parametrize("text, size", [("100KB", 100_000), ("100kb", 100_000), ("1.5MiB", 1_572_864),
                                        ("2048", 2048), ("64 B", 64), ("1KiB", 1024), ("2MB", 2_000_000),
                                        ("1e3KB", 1_000_000)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, words", [("100XB", "unknown unit 'XB'"), ("0KB", "positive"), ("-5KB", "positive"),
                                         ("KB", "expected a number"), ("3000MB", "under 2 GiB"),
                                         ("1GB", "unknown unit")])
def test_parse_size_refuses(text, words):
    with pytest.raises(UserError, match=words):
        parse_size(text)


def cand(label: str, macs: int, **artifacts: tuple[float, int]) -> Candidate:
    """A candidate of `macs` MACs (params macs // 10) with {kind: (latency_ms, bytes)}."""
    family, _, size = label.partition(":")
    width, _, depth = size.partition("x")
    return Candidate(family, int(width), int(depth), macs // 10, macs,
                     {k.replace("_", "-"): {"latency_ms": ms, "bytes": b} for k, (ms, b) in artifacts.items()})


GRID = [  # a small grid's measurements on a target
    cand("cnn:64x4", 1_000_000, onnx_fp32=(9.0, 160_000), onnx_int8=(4.0, 45_000)),
    cand("cnn:48x4", 600_000, onnx_fp32=(6.0, 90_000), onnx_int8=(3.0, 30_000)),
    cand("cnn:32x4", 450_000, onnx_fp32=(4.5, 42_000), onnx_int8=(2.5, 22_000)),
    cand("mlp:64x2", 300_000, onnx_fp32=(1.0, 12_000)),
    cand("cnn:16x4", 120_000, onnx_fp32=(2.0, 13_000), onnx_int8=(1.5, 14_000)),
    cand("cnn:8x4", 40_000, onnx_fp32=(1.2, 6_000)),
    cand("cnn:4x4", 30_000, onnx_fp32=(1.1, 4_000)),
]


def test_chain_is_largest_first_each_at_most_half_the_macs():
    chain = select_chain(GRID, Budget(5.0, None, "pi"), generations=3)
    # cnn:64x4 meets with int8; cnn:48x4 has over half its MACs, so cnn:32x4 follows
    assert [c.label for c in chain] == ["cnn:64x4", "cnn:32x4", "cnn:16x4"]
    assert all(b.macs <= 0.5 * a.macs for a, b in zip(chain, chain[1:]))


def test_chain_count_and_ratio_cap_it():
    assert [c.label for c in select_chain(GRID, Budget(5.0, None, "pi"), generations=1)] == ["cnn:64x4"]
    # with a ratio of 0.1 only candidates a tenth as large follow
    assert [c.label for c in select_chain(GRID, Budget(5.0, None, "pi"), 5, ratio=0.1)] == ["cnn:64x4", "cnn:8x4"]


def test_precision_can_be_what_meets_the_budget():
    budget = Budget(5.0, None, "pi")
    assert meeting_artifact(GRID[0], budget) == "onnx-int8"  # fp32 takes 9 ms
    assert meeting_artifact(GRID[2], budget) == "onnx-fp32"  # both meet: the least lossy first
    fp32_only = Budget(5.0, None, "pi", artifacts=("onnx-fp32",))
    assert [c.label for c in select_chain(GRID, fp32_only, 3)] == ["cnn:32x4", "cnn:16x4", "cnn:8x4"]


def test_size_budget_and_both_budgets():
    assert [c.label for c in select_chain(GRID, Budget(None, 15_000), 3)] == ["mlp:64x2", "cnn:16x4", "cnn:8x4"]
    # one artifact must meet both: cnn:16x4's int8 is fast enough but larger than its fp32
    both = Budget(1.6, 13_500, "pi")
    assert meeting_artifact(GRID[4], both) is None
    assert [c.label for c in select_chain(GRID, both, 3)] == ["mlp:64x2", "cnn:8x4"]


def test_nothing_meets_says_the_closest():
    budget = Budget(0.5, 1_000, "pi")
    assert select_chain(GRID, budget, 3) == []
    assert closest(GRID, budget) == ("the fastest, mlp:64x2, takes 1 ms on pi; "
                                     "the smallest, cnn:4x4, takes 4 KB")


def test_an_unmeasured_artifact_meets_nothing():
    broken = Candidate("cnn", 8, 4, 800, 9000, {"onnx-fp32": {"error": "runner exited 1"}})
    assert meeting_artifact(broken, Budget(100.0, None, "pi")) is None


def test_verdict_met_and_missed_by():
    budget = Budget(2.0, 20_000, "pi")
    met = verdict({"onnx-fp32": {"latency_ms": 1.5, "bytes": 13_000, "predicted": True}}, budget)
    assert met["met"] and met["artifact"] == "onnx-fp32" and "1.5 ms predicted" in met["text"]
    missed = verdict({"onnx-fp32": {"latency_ms": 2.5, "bytes": 30_000}}, budget)
    assert not missed["met"] and missed["text"] == "missed by 0.5 ms and 10 KB"
    assert verdict({}, budget)["text"].startswith("not checked")


def test_recheck_reads_verified_artifacts_and_the_targets_latency():
    manifest = {"budget": {"latency_ms": 1.0, "size_bytes": None, "target": "pi", "artifacts": []},
                "members": {"teacher": {}, "gen-1": {"artifacts": {
                    "onnx-fp32": {"passed": True, "bytes": 40_000},
                    "onnx-int8": {"passed": False, "bytes": 20_000}}},  # failed verification: it does not count
                    "gen-2": {"artifacts": {"onnx-fp32": {"passed": True, "bytes": 9_000}}}}}
    bench = {"prediction_method": "roofline", "rows": [
        {"member": "gen-1", "artifact": "onnx-fp32", "p50_ms": 0.1, "predicted": {"p50_ms": 1.4}},
        {"member": "gen-1", "artifact": "onnx-int8", "p50_ms": 0.1, "predicted": {"p50_ms": 0.6}},
        {"member": "gen-2", "artifact": "onnx-fp32", "p50_ms": 0.05, "predicted": {"p50_ms": 0.7}}]}
    verdicts = recheck(manifest, bench)
    assert set(verdicts) == {"gen-1", "gen-2"}
    assert verdicts["gen-1"]["text"] == "missed by 0.4 ms"
    assert verdicts["gen-2"]["met"] and verdicts["gen-2"]["artifact"] == "onnx-fp32"


def test_grid_puts_the_datas_family_first_and_respects_cap_and_teacher():
    from edgekd.models import build, count_params

    specs = grid("cnn", (32, 4), True, (40,), 10, cap=24)
    assert specs[0].label() == "cnn:64x4" and {s.family for s in specs} >= {"cnn", "mlp", "dscnn"}
    assert len(specs) <= 24 and len({s.label() for s in specs}) == len(specs)
    assert grid("cnn", (32, 4), True, (40,), 10, cap=3) == specs[:3]
    smaller = grid("cnn", (32, 4), False, (40,), 10, cap=24, below_params=10_090)  # cnn:32x4's own count
    assert smaller and all(count_params(build(s)) < 10_090 for s in smaller)
    assert {s.family for s in grid("mlp", (64, 2), False, (12,), 3, cap=24)} == {"mlp"}


CHEAP = ["--set", "budget.candidates=3", "--set", 'export.formats=["onnx"]', "--set", "export.int8=false"]


@pytest.mark.parametrize("args, words", [
    (["--latency-budget", "5"], "a latency budget is for a device: add --target"),
    (["--target", "raspberry-pi-4", "--latency-budget", "0"], "--latency-budget must be a positive number"),
    (["--target", "raspberry-pi-4", "--latency-budget", "-3"], "--latency-budget must be a positive number"),
    (["--target", "raspberry-pi-4", "--latency-budget", "1e9"], "an hour"),
    (["--size-budget", "100XB"], "unknown unit 'XB'; use B, KB, MB, KiB or MiB"),
    (["--size-budget", "0KB"], "must be a positive size"),
    (["--size-budget", "5000MB"], "under 2 GiB"),
    (["--set", "budget.latency_ms=-1", "--target", "raspberry-pi-4"], "positive number of milliseconds"),
    (["--size-budget", "100KB", "--width", "8"], "a budget chooses the students' widths"),
    (["--size-budget", "100KB", "--no-export"], "a budget is met by an exported artifact"),
    (["--size-budget", "100KB", "--set", "budget.artifacts=onnx-fp64"], "budget.artifacts must be drawn from"),
])
def test_bad_budgets_are_one_sentence(cli, tmp_path, args, words):
    assert_refused(cli("distill", *args, "--out", tmp_path / "run"), words)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_budget_no_candidate_meets_names_the_smallest(cli, tmp_path):
    assert_refused(cli("distill", "--quiet", "--size-budget", "500B", *CHEAP, "--out", tmp_path / "run"),
                   "no candidate student meets the budget of 500 B: the smallest, ", "raise the budget")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_budgeted_run_every_generation_meets_it(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("distill", *TINY, "--set", "export.enabled=true", "--no-baseline",
                            "--target", "raspberry-pi-4", "--latency-budget", "5", "--size-budget", "5KB",
                            *CHEAP, "--set", "budget.candidates=6", "--set", "bench.processes=1",
                            "--set", "bench.min_seconds=0.05", "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    budget = manifest["budget"]
    assert len(budget["candidates"]) == 6
    assert any(c["meets"] is None for c in budget["candidates"])  # the grid reaches past 5 KB
    trained = sorted((c for c in budget["candidates"] if c["trained"]), key=lambda c: c["trained"])
    gens = [m for m in manifest["members"] if m.startswith("gen-")]
    assert [c["trained"] for c in trained] == gens and gens
    assert [manifest["members"][g]["label"] for g in gens] == [c["label"] for c in trained]
    for g in gens:  # met as predicted, after training: size on disk and the target's predicted latency
        assert budget["verdicts"][g]["met"] and "predicted" in budget["verdicts"][g]["text"], budget["verdicts"][g]
        assert manifest["members"][g]["artifacts"]["onnx-fp32"]["bytes"] <= 5_000
    macs = [manifest["members"][g]["macs"] for g in gens]
    assert all(b <= 0.5 * a for a, b in zip(macs, macs[1:]))
    assert "budget: 5 ms on raspberry-pi-4 and 5 KB" in stdout
    report = (out / "report" / "report.md").read_text()
    assert "## Budget search" in report and all(c["label"] in report for c in budget["candidates"])
    assert (out / "report" / "plots" / "budget_candidates.png").stat().st_size > 0
