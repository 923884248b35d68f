"""Write report.md, report.html (one self-contained file) and results.json for a run."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Callable

from edgekd import runtimes
from edgekd.errors import UserError
from edgekd.locking import run_lock
from edgekd.recipe import TRAIN_PRECISIONS
from edgekd.report import plots, tuning
from edgekd.report.budget import budget_summary, budget_table
from edgekd.report.results import SCHEMA, RunResults, collect, control_name, deployable, ms, shown_controls, target_p50
from edgekd.report.uncertainty import NOISE_P, accuracy_text, interval_text, member_gain, test_rows
from edgekd.runs import LINEAR, Run, control_names, controls_of, write_bytes, write_json


def build_report(run_dir: Path, within_points: float = 1.0, targets: list[str] | None = None,
                 on_event: Callable[[dict], None] | None = None) -> dict:
    """Write the run's report; it waits for a writer of the run to finish (edgekd.locking), so
    it never reads a run half-way through an export or a bench."""
    with run_lock(Run.open(run_dir).root, "report", shared=True, wait=True, on_event=on_event):
        return _build_report(run_dir, within_points, targets)


def _build_report(run_dir: Path, within_points: float, targets: list[str] | None) -> dict:
    res = collect(run_dir)
    if targets:
        targets = [_bench_name(t, res.bench) for t in targets]
        unknown = [t for t in targets if t not in res.bench]
        if unknown:
            raise UserError(f"{res.run.root} has no benchmark for {unknown[0]!r}; benchmarked: "
                            f"{', '.join(res.bench) or 'none'}")
        res.bench = {t: r for t, r in res.bench.items() if t in targets}
    for target, n in sorted(res.stale.items()):
        if target in res.bench:
            rows, were = ("rows", "they timed were") if n > 1 else ("row", "it timed was")
            res.missing.append(f"{n} {target} bench {rows}, left out because the artifact{'s' * (n > 1)} {were} "
                               f"re-exported or removed since (run `edgekd bench {res.run.root} --target "
                               f"{_target_spec(res.bench[target]['target'])}` again)")
    run = res.run
    plot_dir = run.plots_dir
    figures = [("Size vs accuracy", plots.size_vs_accuracy(res, plot_dir)[0])]
    for target in sorted(res.bench):
        figures.append((f"Latency vs accuracy: {target}", plots.latency_vs_accuracy(res, target, plot_dir)[0]))
    if "budget" in res.manifest:
        figures.append(("Budget search", plots.budget_candidates(res, plot_dir)[0]))
    figures.append(("The chain", plots.chain(res, plot_dir)[0]))
    if res.curves:
        figures.append(("Training curves", plots.training_curves(res, plot_dir)[0]))
    tuned = tuning.load(run)
    if tuned and tuned["best"]:
        figures.append(("Tuning: trials and the parameters' importance", tuning.plot(tuned, plot_dir)[0]))
    drawn = {p.stem for _, p in figures}
    for old in plot_dir.glob("*"):  # plots of targets no longer shown would read as current
        if old.suffix in (".png", ".svg") and old.stem not in drawn:
            old.unlink()
    sections = _sections(res, within_points)
    if tuned and tuned["best"]:
        sections["summary"].append(tuning.summary_line(tuned, res.manifest["data"]["val"]))
    write_json(run.results_path, {"schema": SCHEMA, "run": res.name, "data": res.manifest["data"],
                                  "summary": sections["summary"], "missing": res.missing, "rows": res.rows()})
    write_text(run.report_path("md"), _markdown(res, sections, figures, run.report_dir))
    write_text(run.report_path("html"), _html(res, sections, figures))
    return {"directory": str(run.report_dir), "summary": sections["summary"], "missing": res.missing,
            "plots": [str(p) for _, p in figures]}


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def _sections(res: RunResults, within: float) -> dict:
    teacher = res.teacher_acc()
    n = test_rows(res.manifest)
    members = res.manifest["members"]
    gens = [p for p in res.points if p["role"] == "gen"]
    summary = []
    if teacher is not None and gens:
        ok = [p for p in gens if p["verified"] and p["accuracy"] >= teacher - within / 100]
        if ok:
            best = min(ok, key=lambda p: p["size_bytes"])
            tpoint = next((p for p in res.points if p["role"] == "teacher"), None)
            tsize = tpoint and tpoint["size_bytes"]
            teacher_artifact = tpoint and (f"{tpoint['artifact']} file" if runtimes.FORMATS[tpoint["format"]].exported
                                           else "weights file")
            digits = 1 if tsize and tsize < 10 * best["size_bytes"] else 0
            ratio = f", {tsize / best['size_bytes']:.{digits}f}x smaller than the teacher's {teacher_artifact}" \
                if tsize else ""
            vs = member_gain(res.run, res.manifest, best["member"], "teacher")
            relation = f"; {best['member']} in torch against the teacher: {vs.text()}" if vs else ""
            summary.append(f"Smallest model within {within:g} point{'s' * (within != 1)} of the teacher "
                           f"({accuracy_text(teacher, n)}) or above it: "
                           f"{best['member']} {best['artifact']}, {best['size_bytes'] / 1024:.1f} KiB, "
                           f"{100 * best['accuracy']:.1f}%{ratio}{relation}.")
        else:
            summary.append(f"No verified artifact of a generation is within {within:g} point{'s' * (within != 1)} of "
                           f"the teacher ({100 * teacher:.1f}%).")
    for target, rep in sorted(res.bench.items()):
        rows = deployable(rep)
        if not rows:
            if any("error" not in r for r in rep["rows"]):
                summary.append(f"Nothing benchmarked for {target} could ship: no verified artifact in its runtimes "
                               f"({', '.join(rep['target'].get('runtimes', [])) or 'none listed'}) has a latency "
                               "there.")
            continue
        fast = min(rows, key=lambda r: target_p50(r, rep))
        how = "predicted" if rep.get("prediction_method") else f"measured on {rep['measured_on']}"
        summary.append(f"Fastest on {target} (verified, in its runtimes): {fast['member']} {fast['artifact']} at "
                       f"{ms(target_p50(fast, rep))} ms p50 ({how}), {100 * fast['accuracy']:.1f}% accurate."
                       + _budget_line(rows, rep))
    gens = sorted((g for g in members if g.startswith("gen-")), key=_order)
    controls = {g: controls_of(res.manifest, g) for g in gens}
    # each gain read once (per-row outcomes from disk), for the summary and the table
    gains = {(g, kind): member_gain(res.run, res.manifest, g, member)
             for g in gens for kind, member in control_names(res.manifest, g).items()}
    if any(controls.values()):
        summary.append("Distillation over training the same architecture from scratch on the labelled rows "
                       "(points of test accuracy, 95% interval), "
                       + "; ".join(f"for {_control_text(res, kind)}: " + ", ".join(
                           f"{g} {_gain_text(gains[(g, kind)])}"
                           for g, c in controls.items() if kind in c)
                           for kind in shown_controls(list(controls.values()))) + ".")
    if LINEAR in res.manifest and "teacher" in members:
        lin = res.manifest[LINEAR]
        vs = member_gain(res.run, res.manifest, "teacher", LINEAR)
        verdict = "beats it" if vs and not vs.within_noise and vs.points > 0 else \
            "does worse" if vs and not vs.within_noise else "is not distinguishable from it"
        summary.append(f"A linear model (logistic regression on the standardized inputs) reaches "
                       f"{accuracy_text(lin['test_acc'], n)}; the teacher {verdict}"
                       + (f" ({vs.text()})." if vs else "."))
    if "budget" in res.manifest:
        summary.append(budget_summary(res.manifest["budget"]))
    summary += [f"Missing: {m}." for m in res.missing]

    shown = shown_controls(list(controls.values()))
    chain_rows = [["member", "arch", "params", "MACs", "taught by", f"test acc (torch) [95% CI], {n} rows"]
                  + [h for kind in shown
                     for h in (f"scratch, {control_name(res.manifest['recipe'], kind)}", "gain (pts) [95% CI]")]]
    if LINEAR in res.manifest:
        chain_rows.append([LINEAR, "logistic regression", "-", "-", "-",
                           interval_text(res.manifest[LINEAR]["test_acc"], n)]
                          + ["-", "-"] * len(shown))
    for name in ["teacher"] * ("teacher" in members) + gens:
        m, c = members[name], control_names(res.manifest, name)
        chain_rows.append([name, m.get("label", m.get("kind", "")), _n(m.get("params")), _n(m.get("macs")),
                           m.get("teacher") or "-", interval_text(m["test_acc"], n)]
                          + [v for kind in shown for v in (
                              (f"{100 * members[c[kind]]['test_acc']:.1f}%", _gain_text(gains[(name, kind)]))
                              if kind in c else ("-", "-"))])
    artifact_rows = [["member", "artifact", "size", "weights", "accuracy", "verified"]]
    for p in sorted(res.points, key=lambda p: (_order(p["member"]), p["artifact"])):
        weights = p.get("weight_bytes")
        artifact_rows.append([p["member"], p["artifact"], f"{p['size_bytes'] / 1024:.1f} KiB",
                              f"{weights / 1024:.1f} KiB" if weights is not None else "-",
                              f"{100 * p['accuracy']:.1f}%", "yes" if p["verified"] else "NO"])
    bench_tables = {}
    for target, rep in sorted(res.bench.items()):
        t = [["member", "artifact", "accuracy", f"p50 ms ({rep['measured_on']})", "p90 ms",
              "predicted p50 ms [interval]", "load+run MB", "fits RAM", "note"]]
        for r in rep["rows"]:
            pred = r.get("predicted")
            note = "; ".join(bench_notes(r, rep))
            t.append([r["member"], r["artifact"], f"{100 * r['accuracy']:.1f}%" if "accuracy" in r else "-",
                      _ms(r.get("p50_ms")), _ms(r.get("p90_ms")),
                      predicted_ms(pred) if pred else "-",
                      _f(r.get("peak_rss_delta_mb")), {True: "yes", False: "NO"}.get(r.get("fits_ram"), "-"), note])
        bench_tables[target] = t
    return {"summary": summary, "chain": chain_rows, "artifacts": artifact_rows, "bench": bench_tables,
            "budget": budget_table(res.manifest["budget"]) if "budget" in res.manifest else None,
            "method": _method(res)}


def _method(res: RunResults) -> list[str]:
    m = res.manifest
    compute = m.get("compute", {"device": "cpu", "precision": TRAIN_PRECISIONS[0]})  # runs from before devices
    on = "" if compute["device"] == "cpu" else f" on {compute.get('name', compute['device'])} ({compute['device']})"
    lines = [f"Trained{on} in {compute['precision']} arithmetic; host {m['host']['cpu']} ({m['host']['cores']} "
             f"cores, torch {m['versions'].get('torch')}, {m.get('torch_threads')} threads); "
             f"data {m['data']['spec']} (fingerprint {m['data']['fingerprint']}: "
             f"{m['data']['train']} train, {m['data']['val']} val, {m['data']['test']} test, "
             f"{m['data']['transfer']} transfer).",
             "Accuracy of each artifact is top-1 on the test set computed by its own runtime ("
             + ", ".join(r.label for r in runtimes.RUNTIMES.values() if not r.host_only)
             + ", with fp32 arithmetic where the runtime would otherwise pick a lower precision), not by the torch "
             "model.",
             "Size is an artifact's files on disk (a graph and its weights file where the format splits them: IR "
             ".xml + .bin, ncnn .param + .bin); weights is the stored constants alone, the part "
             "quantization shrinks. Below a few thousand parameters the graph description outweighs the weights, "
             "so an int8 file can be larger than its fp32 source.",
             "load+run MB is the resident memory loading and running the model added to a process that had already "
             "imported its runtime; fits RAM compares that whole process's peak with half of the target's RAM."]
    lines.append(f"Accuracies carry a 95% Wilson interval on the {m['data']['test']} test rows. A gain between "
                 "two models is paired on the same rows: its interval comes from the rows exactly one of them gets "
                 f"right, and it is marked within noise unless McNemar's exact test gives p < {NOISE_P:g}.")
    if any(k.startswith("baseline-") for k in m["members"]):
        lines.append("Scratch controls are each generation's architecture trained on the labelled rows alone, from the "
                     "generation's initial weights: \"same steps\" for as many optimizer steps as the distilled "
                     "student (the same compute, so a gain is not bought by training longer), \"N epochs\" for the "
                     "recipe's epochs (fewer steps when a transfer set lengthens the student's epochs: the usual "
                     "control of a KD paper, and a weaker one). When the two come to the same epochs they are one run.")
    for target, rep in sorted(res.bench.items()):
        s = rep["settings"]
        where = f"on the device {rep['device']}" if rep["device"] else f"on this host ({rep['host']['cpu']})"
        lines.append(f"{target}: measured {where} with {s['threads']} threads, batch {s['batch']}, "
                     f"{s['warmup']} warm-up runs, at least {s['min_iters']} runs and {s['min_seconds']} s per "
                     f"process, {s['processes']} fresh process{'es interleaved' if s['processes'] > 1 else ''}; "
                     f"versions {', '.join(f'{k} {v}' for k, v in rep['versions'].items())}.")
        if rep.get("prediction_method"):
            probe, busy = rep["host"], rep["host"].get("probe_busy_cpus")
            lines.append(f"{target}: predicted numbers use the {rep['prediction_method']}; they are intervals, "
                         "labelled predicted, with an interval from their error on published board latencies. The host "
                         f"probe read {probe['peak_gflops_fp32']:g} GFLOP/s and {probe['memory_bandwidth_gbs']:g} GB/s"
                         + (f" while other processes used {busy:g} CPUs." if busy and busy >= 0.1 else "."))
            if rep.get("overhead"):
                o = rep["overhead"]
                lines.append(f"{target}: ONNX Runtime rows first lose the runtime's own cost, measured here on "
                             f"synthetic graphs ({1e3 * o['call_ms']:.1f} us per call, {1e3 * o['op_ms']:.2f} us per "
                             f"operator, {1e3 * o['kernel_ms']:.2f} us per convolution or matrix product), which is "
                             "scaled to the target by the clock ratio; the rest scales by the roofline. Predictions "
                             "of models under 100 M MACs are marked not validated: no published latency checks them.")
        kept = [r for r in rep["rows"] if r.get("kept")]
        if kept:
            lines.append(f"{target}: {len(kept)} row(s) marked kept were measured by an earlier bench of the same "
                         "artifacts on the same machine, threads and batch; each keeps its own processes and runs, "
                         "and its prediction the host probe of that bench (in its note).")
    return lines


def _gain_text(gain) -> str:
    return gain.text() if gain else "-"


def _control_text(res: RunResults, kind: str) -> str:
    return "the same optimizer steps" if kind == "steps" else control_name(res.manifest["recipe"], kind)


def _order(name: str):
    role, _, idx = name.partition("-")
    return ({"teacher": 0, "gen": 1, "baseline": 2}.get(role, 3), int(idx or 0))


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def _f(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _ms(v) -> str:
    return "-" if v is None else ms(v)


def _budget_line(rows: list[dict], rep: dict) -> str:
    """How many deployable artifacts meet the target's latency budget, judged as the notes judge each row."""
    budget = rep["target"].get("latency_budget_ms")
    if not budget:
        return ""
    return f" {sum(target_p50(r, rep) <= budget for r in rows)} of {len(rows)} artifacts are within its " \
           f"{ms(budget)} ms budget."


def bench_notes(r: dict, rep: dict) -> list[str]:
    notes = [r[k] for k in ("error", "prediction_error") if k in r]
    if r.get("verified") is False:
        notes.append("failed verification against torch")
    if r.get("kept"):
        probe = (r.get("earlier") or {}).get("peak_gflops_fp32")
        probed = f", host probe {probe:.0f} GFLOP/s" if probe and rep.get("prediction_method") else ""
        notes.append(f"kept from an earlier bench ({r.get('measured_at', '?')[:16].replace('T', ' ')}{probed})")
    if r.get("unstable"):
        notes.append(f"unstable: {r['unstable_reason']}" if "unstable_reason" in r else "unstable")
    if not r.get("runtime_on_target", True):
        notes.append(f"{r['runtime']} not on target")
    budget, p50 = rep["target"].get("latency_budget_ms"), target_p50(r, rep)
    if budget and p50 is not None and p50 > budget:
        notes.append(f"over the {ms(budget)} ms budget")
    return notes


def predicted_ms(pred: dict) -> str:
    """The prediction and its interval; a size class no published latency checks says so
    (bench files from before the classes existed carry no mark)."""
    unchecked = f" (not validated: {pred['size_class']} model)" if pred.get("validated") is False else ""
    return f"{ms(pred['p50_ms'])} [{ms(pred['low_ms'])}–{ms(pred['high_ms'])}]{unchecked}"


def md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _markdown(res: RunResults, s: dict, figures, out: Path) -> str:
    parts = [f"# edgekd report: {res.name}", "", *[f"- {line}" for line in s["summary"]], "",
             "## Generations", "", md_table(s["chain"]), "", "## Artifacts", "", md_table(s["artifacts"])]
    for target, t in s["bench"].items():
        parts += ["", f"## {target}", "", md_table(t)]
    if s["budget"]:
        parts += ["", "## Budget search", "", md_table(s["budget"])]
    parts += ["", "## Plots", ""] + [f"![{title}]({p.relative_to(out)})" for title, p in figures]
    parts += ["", "## How this was measured", "", *[f"- {line}" for line in s["method"]], ""]
    return "\n".join(parts)


def html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,td:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.summary{background:#f6f9ff;border-left:4px solid #1f77b4;padding:.5em 1em}"""


def _html(res: RunResults, s: dict, figures) -> str:
    def img(p):
        return base64.b64encode(p.read_bytes()).decode()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd report: {html.escape(res.name)}</title>",
             f"<style>{CSS}</style></head><body><h1>edgekd report: {html.escape(res.name)}</h1>",
             "<div class='summary'><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in s["summary"])
             + "</ul></div>",
             "<h2>Generations</h2>", html_table(s["chain"]), "<h2>Artifacts</h2>", html_table(s["artifacts"])]
    for target, t in s["bench"].items():
        parts += [f"<h2>{html.escape(target)}</h2>", html_table(t)]
    if s["budget"]:
        parts += ["<h2>Budget search</h2>", html_table(s["budget"])]
    parts.append("<h2>Plots</h2>")
    parts += [f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{img(p)}'>"
              for title, p in figures]
    parts += ["<h2>How this was measured</h2><ul>"] + [f"<li>{html.escape(line)}</li>" for line in s["method"]]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def _target_spec(target: dict) -> str:
    """What to pass to --target for this profile: its name, or the path of a user's own file."""
    from edgekd.targets import builtin_dir

    path = target.get("path")
    return path if path and Path(path).parent != builtin_dir().resolve() else target["name"]


def _bench_name(spec: str, benched: dict) -> str:
    """A target as the run's benchmarks name it: aliases ("raspberry-pi") resolve to their profile."""
    if spec in benched:
        return spec
    from edgekd.targets import load_target

    try:
        return load_target(spec).name
    except UserError:
        return spec  # reported as not benchmarked, with the list of what was
