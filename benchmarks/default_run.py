"""The README's default, `edgekd distill --chain 3`, end to end, run as a user runs it: the
command in a subprocess, timed as a whole and by phase (from the progress lines it prints),
then the generation table (distilled vs scratch) and every exported artifact's size and
accuracy. Afterwards, outside the timed command, `edgekd export RUN --format ncnn` (when its
extra is installed) and `edgekd bench RUN --target raspberry-pi-4 --native` add ncnn and
benchmark_app's latency, so each generation's host latency reads in every runtime side by
side, MLPerf-style (p50, p90, timed runs, minimum duration), with int8 against fp32.

Run: python -m benchmarks.default_run   (EDGEKD_BENCH_QUICK=1: 1 generation, 1 epoch, no transfer set)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekd import host
from edgekd.report.render import predicted_ms
from edgekd.report.results import control_name
from edgekd.report.uncertainty import interval_text, member_gain
from edgekd.runs import CONTROLS, Run, control_names, controls_of
from edgekd.runtimes import RUNTIMES

from benchmarks.verdict import ENV, LATENCY_HEADER, QUICK, latency_cells, quick, verdict

PLOTS = Path(__file__).parent / "default-run"
COMMAND = ["edgekd", "distill", "--chain", "3"]
QUICK_FLAGS = ["--chain", "1", "--epochs", "1", "--teacher-epochs", "1", "--transfer", "0", "--set",
               "train.min_steps=0"]
GEN_GAP = 3.0       # points: the smallest generation may trail the teacher by this much (as benchmarks.real_data)
INT8_GOAL = 0.7     # int8 p50 / fp32 p50 of the same member and runtime
# the progress lines that open each phase after training; "report" is what is left after bench
PHASES = {"exporting every generation": "export + verify", "benchmarking for": "bench (host, predicted)"}


def timed_command(argv: list[str], cwd: Path) -> dict[str, float]:
    """Run the CLI, reading its progress lines as they come: {phase: seconds}."""
    began = time.perf_counter()
    marks = [("train (data, teacher, generations, scratch controls)", began)]
    proc = subprocess.Popen(argv, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line])[-20:]
        for start, phase in PHASES.items():
            if line.startswith(start):
                marks.append((phase, time.perf_counter()))
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{''.join(tail)}")
    ended = time.perf_counter()
    phases = {name: (marks[i + 1][1] if i + 1 < len(marks) else ended) - at for i, (name, at) in enumerate(marks)}
    phases["whole command"] = ended - began
    return phases


def main() -> None:
    from edgekd.recipe import Recipe

    recipe = Recipe()
    flags = quick([], QUICK_FLAGS)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "default"
        edgekd = [sys.executable, "-m", "edgekd"]
        phases = timed_command([*edgekd, *COMMAND[1:], *flags, "--out", str(root)], Path(d))
        run = Run.open(root)
        if RUNTIMES["ncnn"].installed(converters=True):
            subprocess.run([*edgekd, "export", str(root), "--format", "ncnn", "-q"], check=True, cwd=d, env=ENV)
        target = recipe.bench.targets[0]
        subprocess.run([*edgekd, "bench", str(root), "--target", target, "--native", "--processes",
                        str(recipe.bench.processes), "--min-seconds", str(recipe.bench.min_seconds), "-q"],
                       check=True, cwd=d, env=ENV)
        m = run.manifest()
        members = m["members"]
        gens = run.members("gen")
        gains = {(name, kind): member_gain(run, m, name, member) for name in members
                 for kind, member in control_names(m, name).items()}  # paired: reads each member's outcomes
        bench = json.loads(run.bench_path(target).read_text())
        gap = member_gain(run, m, gens[-1], "teacher")
        if not QUICK:
            PLOTS.mkdir(exist_ok=True)
            for png in run.plots_dir.glob("*.png"):  # the README shows these
                shutil.copyfile(png, PLOTS / png.name)
    print(f"# default run: `{' '.join(COMMAND + flags)}`  (host: {host.cpu_model()}, {host.cores()} cores, "
          f"torch {m['versions']['torch']}, {m['torch_threads']} threads)\n")
    whole = phases.pop("whole command")
    print("| phase | seconds |\n|---|---|")
    for name, seconds in phases.items():
        print(f"| {name} | {seconds:.1f} |")
        if name.startswith("train"):  # the trainer's own clock per member; the rest is data, labelling, files
            trained = {n: members[n]["train_seconds"] for n in members if "train_seconds" in members[n]}
            for member, s in trained.items():
                print(f"| &nbsp;&nbsp;{member} | {s:.1f} |")
            print(f"| &nbsp;&nbsp;start-up, data, soft targets, evaluation, files | "
                  f"{seconds - sum(trained.values()):.1f} |")
    print(f"| **the whole command, as a user waits for it** | **{whole:.1f}** |\n")
    print("Phases are split at the progress lines the command prints; the last one holds the report.")
    n = m["data"]["test"]
    print(f"\n| member | arch | params | x smaller | taught by | test acc [95% CI], {n} rows | "
          + " | ".join(f"scratch, {control_name(m['recipe'], kind)} | gain, pts [95% CI]" for kind in CONTROLS)
          + " | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| linear | logistic regression | - | - | - | {interval_text(m['linear']['test_acc'], n)} "
          + "| - | - " * len(CONTROLS) + f"| {m['linear']['seconds']:.1f} |")
    teacher = members["teacher"]
    for name in ["teacher", *gens]:
        g, controls = members[name], controls_of(m, name)
        columns = ""
        for kind in CONTROLS:
            b = controls.get(kind)
            columns += f"| {100 * b['test_acc']:.1f}% | {gains[(name, kind)].text()} " if b else "| - | - "
        print(f"| {name} | {g['label']} | {g['params']:,} | {teacher['params'] / g['params']:.1f} "
              f"| {g.get('teacher') or '-'} | {interval_text(g['test_acc'], n)} {columns}| {g['train_seconds']:.1f} |")
    print("\nA gain is paired on the same test rows (Newcombe's interval; within noise when McNemar's exact p >= "
          "0.05).")
    met = True if gap.points >= -GEN_GAP else (None if gap.high >= -GEN_GAP else False)
    print(verdict(f"the smallest generation ({gens[-1]}) within {GEN_GAP:g} points of the teacher; undecided when "
                  "the goal lies inside the gap's interval", met, f"{gap.text()}"))
    print("\n| member | artifact | size (bytes) | weights (bytes) | accuracy in its runtime | agreement with torch "
          "| max abs diff | verified |")
    print("|---|---|---|---|---|---|---|---|")
    for name in gens:
        for art, a in members[name]["artifacts"].items():
            print(f"| {name} | {art} | {a['bytes']:,} | {a['weight_bytes']:,} | {100 * a['accuracy']:.1f}% "
                  f"| {100 * a['agreement']:.1f}% | {a['max_abs_diff']:.2g} | {'yes' if a['passed'] else 'NO'} |")
    _latency(bench)
    _runtimes_side_by_side(bench)
    _int8_against_fp32(bench)
    print(f"\nRecipe: {json.dumps(m['recipe']['train'])}; distill {json.dumps(m['recipe']['distill'])}; "
          f"transfer set {m['data']['transfer']} generated MNIST-1D inputs.")


def _latency(bench: dict) -> None:
    s = bench["settings"]
    print(f"\nBatch-1 latency on this host (`edgekd bench --native`, {s['threads']} threads, {s['processes']} fresh "
          f"processes per artifact, interleaved; MLPerf-style: p50 and p90 are medians over the processes, runs are "
          f"the timed runs of all processes, each measured for at least the minimum duration), benchmark_app's p50 "
          f"where it applies, and predicted for {bench['target']['name']}:\n")
    print(f"| member | artifact | {LATENCY_HEADER} | native p50 ms | vs torch eager | predicted p50 ms [interval] |")
    print("|---|---|---|---|---|---|---|---|---|")
    eager = {r["member"]: r["p50_ms"] for r in bench["rows"] if r["artifact"] == "torch-fp32" and "p50_ms" in r}
    for r in bench["rows"]:
        if "p50_ms" not in r:
            print(f"| {r['member']} | {r['artifact']} | failed: {r.get('error')} | | | | | | |")
            continue
        pred = r.get("predicted")
        native = f"{r['native_p50_ms']:.4f}" if "native_p50_ms" in r else "-"
        print(f"| {r['member']} | {r['artifact']} | {latency_cells(r, s['min_seconds'])} | {native} "
              f"| {r['p50_ms'] / eager[r['member']]:.2f}x | {predicted_ms(pred) if pred else '-'} |")
    for note in bench.get("notes", []):
        print(f"\n{note}")


def _int8_against_fp32(bench: dict) -> None:
    """Per member and runtime: int8 p50 / fp32 p50, against the goal."""
    rows = {(r["member"], r["artifact"]): r for r in bench["rows"] if "p50_ms" in r}
    print(f"\nint8 against fp32 on this host (goal: int8 p50 <= {INT8_GOAL} x fp32 p50, the usual reason to ship int8):"
          "\n\n| member | runtime | fp32 p50 ms | int8 p50 ms | int8 / fp32 | verdict |\n|---|---|---|---|---|---|")
    ratios = []
    for (member, artifact), q in rows.items():
        if not artifact.endswith("-int8"):
            continue
        f = rows.get((member, artifact.replace("-int8", "-fp32")))
        if not f:
            continue
        ratio = q["p50_ms"] / f["p50_ms"]
        ratios.append(ratio)
        word = "met" if ratio <= INT8_GOAL else ("NOT met: int8 is slower" if ratio > 1 else "NOT met")
        print(f"| {member} | {q['runtime']} | {f['p50_ms']:.4f} | {q['p50_ms']:.4f} | {ratio:.2f} | {word} |")
    met = sum(r <= INT8_GOAL for r in ratios)
    slower = sum(r > 1 for r in ratios)
    print(verdict(f"every int8 artifact of the default run at <= {INT8_GOAL}x its fp32 p50", bool(ratios) and
                  met == len(ratios), f"{met} of {len(ratios)} met, int8 slower than fp32 on {slower}"
                  + (f", ratios {min(ratios):.2f}-{max(ratios):.2f}" if ratios else "")))


def _runtimes_side_by_side(bench: dict) -> None:
    """fp32 host latency of each generation in every runtime, and each runtime's ratio to ONNX Runtime."""
    rows = {(r["member"], r["artifact"]): r for r in bench["rows"] if "p50_ms" in r}
    kinds = [k for k in ("onnx-fp32", "openvino-fp32", "ncnn-fp32") if any(a == k for _, a in rows)]
    print("\nfp32 on this host, runtime beside runtime (p50 ms; in brackets the spread of the per-process "
          "p50s; ratio to ONNX Runtime):\n")
    print("| member | " + " | ".join(kinds) + " | " + " | ".join(f"{k} / onnx-fp32" for k in kinds[1:]) + " |")
    print("|---|" + "---|" * (2 * len(kinds) - 1))
    for member in sorted({m for m, _ in rows}):
        got = [rows.get((member, k)) for k in kinds]
        cells = [f"{r['p50_ms']:.4f} [{min(r['process_p50s_ms']):.4f}-{max(r['process_p50s_ms']):.4f}]"
                 + (" unstable" if r.get("unstable") else "") if r else "-" for r in got]
        ratios = [f"{r['p50_ms'] / got[0]['p50_ms']:.2f}x" if r and got[0] else "-" for r in got[1:]]
        print(f"| {member} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
