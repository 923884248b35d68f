"""`edgekd compare`: several runs on the same axes, with their recipe differences."""

from __future__ import annotations

import base64
from pathlib import Path

from edgekd.errors import UserError
from edgekd.report import plots
from edgekd.report.render import html_table, md_table, write_text, CSS
from edgekd.report.results import collect
from edgekd.runs import baseline_of


def flat(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def compare_runs(run_dirs: list[Path], out: Path, force: bool = False) -> dict:
    if len(run_dirs) < 2:
        raise UserError("compare needs at least two runs")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a directory; choose another --out")
    runs = [collect(d) for d in run_dirs]
    roots = [r.run.root for r in runs]
    if len(set(roots)) < len(roots):
        raise UserError("compare was given the same run twice")
    if len({r.name for r in runs}) < len(runs):  # runs/a/x and runs/b/x: label them by their paths
        for r, d in zip(runs, run_dirs):
            r.label = str(d)
    prints = {r.manifest["data"]["fingerprint"] for r in runs}
    if len(prints) > 1 and not force:
        names = ", ".join(f"{r.name}: {r.manifest['data']['spec']} ({r.manifest['data']['fingerprint']})" for r in runs)
        raise UserError(f"the runs were trained on different data ({names}); their accuracies are not comparable "
                        "(--force to compare anyway)")
    recipes = [flat(r.manifest["recipe"]) for r in runs]
    keys = sorted({k for rec in recipes for k in rec})
    differing = [k for k in keys if len({repr(rec.get(k)) for rec in recipes}) > 1]
    diff_rows = [["recipe key"] + [r.name for r in runs]]
    diff_rows += [[k] + [str(rec.get(k, "-")) for rec in recipes] for k in differing]
    best_rows = [["run", "teacher acc", "best generation", "smallest generation (fp32)", "KD gain at smallest (pts)"]]
    for r in runs:
        m = r.manifest["members"]
        gens = sorted((g for g in m if g.startswith("gen-")), key=lambda g: int(g.split("-")[1]))
        if not gens:
            best_rows.append([r.name, "-", "-", "-", "-"])
            continue
        best = max(gens, key=lambda g: m[g]["test_acc"])
        small = gens[-1]
        base = baseline_of(m, small)
        best_rows.append([r.name, f"{100 * m['teacher']['test_acc']:.1f}%" if "teacher" in m else "-",
                          f"{best} {m[best]['label']} {100 * m[best]['test_acc']:.1f}%",
                          f"{small} {m[small]['params']:,} params {100 * m[small]['test_acc']:.1f}%",
                          f"{100 * (m[small]['test_acc'] - base['test_acc']):+.1f}" if base else "-"])
    figure = plots.compare_size(runs, out / "plots")[0]
    md = "\n".join([f"# edgekd compare: {', '.join(r.name for r in runs)}", "", "## Recipe differences", "",
                    md_table(diff_rows) if differing else "The recipes are identical.", "", "## Best points", "",
                    md_table(best_rows), "", f"![size vs accuracy]({figure.relative_to(out)})", ""])

    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd compare</title><style>{CSS}</style></head>"
            f"<body><h1>edgekd compare</h1><h2>Recipe differences</h2>"
            + (html_table(diff_rows) if differing else "<p>The recipes are identical.</p>")
            + "<h2>Best points</h2>" + html_table(best_rows)
            + f"<img alt='size vs accuracy' src='data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}'>"
            + "</body></html>")
    write_text(out / "compare.md", md)
    write_text(out / "compare.html", page)
    return {"directory": str(out), "differences": differing, "columns": best_rows[0], "best": best_rows[1:],
            "plot": str(figure)}
