"""`edgekd compare`: several runs on the same axes, with their recipe differences."""

from __future__ import annotations

import base64
from contextlib import ExitStack
from pathlib import Path

from edgekd.diskspace import writing
from edgekd.errors import UserError
from edgekd.locking import run_lock
from edgekd.report import plots
from edgekd.report.render import CSS, html_table, md_table, write_text
from edgekd.report.results import collect
from edgekd.report.uncertainty import gain_text, member_gain, test_rows
from edgekd.runs import Run, control_names


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
    with ExitStack() as stack:  # every run read whole, after any writer of it has finished
        for d in run_dirs:
            stack.enter_context(run_lock(Run.open(d).root, "compare", shared=True, wait=True))
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
    best = [_best_points(r) for r in runs]
    best_rows = best_table(best)
    try:
        with writing(out):  # a full or read-only disk: diskspace's sentence; anything else, this one
            (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the comparison into {out}: {e.strerror}") from None
    figure = plots.compare_size(runs, out / "plots")[0]
    md = "\n".join([f"# edgekd compare: {', '.join(r.name for r in runs)}", "", "## Recipe differences", "",
                    md_table(diff_rows) if differing else "The recipes are identical.", "", "## Best points", "",
                    md_table(best_rows), "", f"![size vs accuracy]({figure.relative_to(out)})", ""])

    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd compare</title><style>{CSS}</style></head>"
            f"<body><h1>edgekd compare</h1><h2>Recipe differences</h2>"
            + (html_table(diff_rows) if differing else "<p>The recipes are identical.</p>")
            + "<h2>Best points</h2>" + html_table(best_rows)
            + "<img alt='size vs accuracy' src='data:image/png;base64,"
            + f"{base64.b64encode(figure.read_bytes()).decode()}'>"
            + "</body></html>")
    write_text(out / "compare.md", md)
    write_text(out / "compare.html", page)
    return {"directory": str(out), "differences": differing, "runs": best, "plot": str(figure)}


def _best_points(r) -> dict:
    """A run's headline numbers (accuracies as fractions, gain in points)."""
    m = r.manifest["members"]
    gens = sorted((g for g in m if g.startswith("gen-")), key=lambda g: int(g.split("-")[1]))

    def point(g):
        return {"member": g, "arch": m[g].get("label"), "params": m[g].get("params"), "test_acc": m[g]["test_acc"]}
    out = {"run": r.name, "path": str(r.run.root), "teacher_acc": m["teacher"]["test_acc"] if "teacher" in m else None,
           "best": None, "smallest": None, "gain_pts": None, "gain_pts_epochs": None}
    out["test_rows"] = test_rows(r.manifest)
    if gens:
        controls = control_names(r.manifest, gens[-1])

        def gain(kind):
            return member_gain(r.run, r.manifest, gens[-1], controls[kind]) if kind in controls else None

        steps, epochs = gain("steps"), gain("epochs")
        out.update(best=point(max(gens, key=lambda g: m[g]["test_acc"])), smallest=point(gens[-1]),
                   gain_pts=round(steps.points, 2) if steps else None,
                   gain_pts_epochs=round(epochs.points, 2) if epochs else None,
                   gain=steps.to_dict() if steps else None, gain_epochs=epochs.to_dict() if epochs else None)
    return out


def best_table(best: list[dict]) -> list[list[str]]:
    """compare's "best points" table for people: a header row, then one row per run."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    def pts(g):
        return "-" if g is None else gain_text(g)
    rows = [["run", "test rows", "teacher acc", "best generation", "smallest generation (fp32)",
             "KD gain at smallest (pts, 95% CI) over scratch: same steps", "... recipe's epochs"]]
    for b in best:
        top, small = b["best"], b["smallest"]
        rows.append([b["run"], str(b.get("test_rows") or "-"), pct(b["teacher_acc"]),
                     f"{top['member']} {top['arch']} {pct(top['test_acc'])}" if top else "-",
                     f"{small['member']} {small['params']:,} params {pct(small['test_acc'])}" if small else "-",
                     pts(b.get("gain")), pts(b.get("gain_epochs"))])
    return rows
