"""The README's default, `edgekd distill --chain 3`, end to end: wall time by phase, the
generation table (distilled vs scratch), and every exported artifact's size and accuracy.
Besides the default formats it exports ncnn too (when its extra is installed), so each
generation's host latency reads in all three runtimes side by side; training is the default's.

Run: python -m benchmarks.default_run
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from edgekd import host
from edgekd.report.render import predicted_ms
from edgekd.report.results import control_name
from edgekd.report.uncertainty import interval_text, member_gain
from edgekd.runs import CONTROLS, control_names, controls_of
from edgekd.runtimes import RUNTIMES

PLOTS = Path(__file__).parent / "default-run"


def main() -> None:
    from edgekd.bench.pipeline import bench_run
    from edgekd.distill.chain import distill
    from edgekd.export.pipeline import export_run
    from edgekd.recipe import Recipe
    from edgekd.report.render import build_report

    recipe = Recipe()
    with tempfile.TemporaryDirectory() as d:
        phases = {}
        t = time.perf_counter()
        run = distill(recipe, out=Path(d) / "default")
        phases["train (data, teacher, generations, scratch controls)"] = time.perf_counter() - t
        t = time.perf_counter()
        formats = recipe.export.formats + (("ncnn",) if RUNTIMES["ncnn"].installed(converters=True) else ())
        export_run(run.root, formats, recipe.export.int8, recipe.export.calibration)
        phases["export + verify"] = time.perf_counter() - t
        t = time.perf_counter()
        bench_run(run.root, list(recipe.bench.targets), processes=recipe.bench.processes,
                  min_seconds=recipe.bench.min_seconds)
        phases["bench (host, predicted for raspberry-pi-4)"] = time.perf_counter() - t
        t = time.perf_counter()
        build_report(run.root)
        phases["report"] = time.perf_counter() - t
        m = run.manifest()
        members = m["members"]
        gains = {(name, kind): member_gain(run, m, name, member) for name in members
                 for kind, member in control_names(m, name).items()}  # paired: reads each member's outcomes
        bench = json.loads(run.bench_path(recipe.bench.targets[0]).read_text())
        PLOTS.mkdir(exist_ok=True)
        for png in run.plots_dir.glob("*.png"):  # the README shows these
            shutil.copyfile(png, PLOTS / png.name)
    print(f"# default run: `edgekd distill --chain 3`  (host: {host.cpu_model()}, {host.cores()} cores, "
          f"torch {m['versions']['torch']}, {m['torch_threads']} threads)\n")
    print("| phase | seconds |\n|---|---|")
    for name, seconds in phases.items():
        print(f"| {name} | {seconds:.1f} |")
        if name.startswith("train"):  # the trainer's own clock per member; the rest is data, labelling, files
            trained = {n: members[n]["train_seconds"] for n in members if "train_seconds" in members[n]}
            for member, s in trained.items():
                print(f"| &nbsp;&nbsp;{member} | {s:.1f} |")
            print(f"| &nbsp;&nbsp;data, soft targets, evaluation, files | {seconds - sum(trained.values()):.1f} |")
    print(f"| **total** | **{sum(phases.values()):.1f}** |\n")
    n = m["data"]["test"]
    print(f"| member | arch | params | x smaller | taught by | test acc [95% CI], {n} rows | "
          + " | ".join(f"scratch, {control_name(m['recipe'], kind)} | gain, pts [95% CI]" for kind in CONTROLS)
          + " | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| linear | logistic regression | - | - | - | {interval_text(m['linear']['test_acc'], n)} "
          + "| - | - " * len(CONTROLS) + f"| {m['linear']['seconds']:.1f} |")
    teacher = members["teacher"]
    for name in ["teacher"] + [f"gen-{k}" for k in range(1, recipe.chain.generations + 1)]:
        g, controls = members[name], controls_of(m, name)
        columns = ""
        for kind in CONTROLS:
            b = controls.get(kind)
            columns += f"| {100 * b['test_acc']:.1f}% | {gains[(name, kind)].text()} " if b else "| - | - "
        print(f"| {name} | {g['label']} | {g['params']:,} | {teacher['params'] / g['params']:.1f} "
              f"| {g.get('teacher') or '-'} | {interval_text(g['test_acc'], n)} {columns}| {g['train_seconds']:.1f} |")
    print("\nA gain is paired on the same test rows (Newcombe's interval; within noise when McNemar's exact p >= "
          "0.05).")
    print("\n| member | artifact | size (bytes) | weights (bytes) | accuracy in its runtime | agreement with torch "
          "| max abs diff | verified |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [f"gen-{k}" for k in range(1, recipe.chain.generations + 1)]:
        for art, a in members[name]["artifacts"].items():
            print(f"| {name} | {art} | {a['bytes']:,} | {a['weight_bytes']:,} | {100 * a['accuracy']:.1f}% "
                  f"| {100 * a['agreement']:.1f}% | {a['max_abs_diff']:.2g} | {'yes' if a['passed'] else 'NO'} |")
    print(f"\nBatch-1 latency on this host ({bench['settings']['threads']} threads, median of "
          f"{bench['settings']['processes']} fresh processes), and predicted for {bench['target']['name']}:\n")
    print("| member | artifact | host p50 ms | vs torch eager | predicted p50 ms [interval] |\n|---|---|---|---|---|")
    eager = {r["member"]: r["p50_ms"] for r in bench["rows"] if r["artifact"] == "torch-fp32" and "p50_ms" in r}
    for r in bench["rows"]:
        if "p50_ms" not in r:
            print(f"| {r['member']} | {r['artifact']} | failed: {r.get('error')} | | |")
            continue
        pred = r.get("predicted")
        interval = predicted_ms(pred) if pred else "-"
        print(f"| {r['member']} | {r['artifact']} | {r['p50_ms']:.4f} | {r['p50_ms'] / eager[r['member']]:.2f}x "
              f"| {interval} |")
    _runtimes_side_by_side(bench)
    print(f"\nRecipe: {json.dumps(m['recipe']['train'])}; distill {json.dumps(m['recipe']['distill'])}; "
          f"transfer set {m['data']['transfer']} generated MNIST-1D inputs.")


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
