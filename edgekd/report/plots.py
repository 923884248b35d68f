"""The four plots of a report (and the overlays of `compare`), as PNG and SVG."""

from __future__ import annotations

import math
from pathlib import Path

from edgekd.report.results import RunResults, control_name, deployable, ms, pareto, shown_controls, target_p50
from edgekd.runs import controls_of
from edgekd.runtimes import FORMATS, KINDS, PRECISIONS, REFERENCE, SIZE_KIND

LABELLED = (SIZE_KIND.name, REFERENCE.name)  # the fp32 point of each member that carries its name

RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, directory: Path, name: str) -> list[Path]:
    from edgekd.runs import atomic_path

    paths = []
    for ext in ("png", "svg"):
        path = directory / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=110, bbox_inches="tight")
        paths.append(path)
    _plt().close(fig)
    return paths


def _short(member: str) -> str:
    return {"teacher": "T"}.get(member, member.replace("gen-", "g").replace("baseline-", "b"))


def _plain_log_ticks(axis) -> None:
    """Log-axis labels as plain numbers (0.02, 1.5, 300) rather than 2x10^-2; the 2s and 5s
    between decades are labelled too when the axis spans three decades or less."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _):
        low, high = sorted(axis.get_view_interval())
        leading = round(v / 10 ** math.floor(math.log10(v)), 6)
        return ms(v) if high / max(low, 1e-12) <= 1000 and leading in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: ms(v)))
    axis.set_minor_formatter(FuncFormatter(minor))


def _front(ax, xs, ys, color="0.3"):
    idx = pareto(list(zip(xs, ys)))
    ax.step([xs[i] for i in idx], [ys[i] for i in idx], where="post", color=color, lw=1, ls="--", alpha=0.7,
            label="Pareto front", zorder=1)


def size_vs_accuracy(res: RunResults, directory: Path) -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    gens = [p for p in res.points if p["role"] == "gen"]
    seen = set()
    for p in gens:
        key = (p["format"], p["precision"])
        ax.scatter(p["size_bytes"] / 1024, 100 * p["accuracy"], marker=FORMATS[p["format"]].marker,
                   color=PRECISIONS[p["precision"]].color, s=45, zorder=3, alpha=1.0 if p["verified"] else 0.25,
                   label=None if key in seen else f"{p['format']} {p['precision']}")
        seen.add(key)
        if p["artifact"] in LABELLED:
            ax.annotate(_short(p["member"]), (p["size_bytes"] / 1024, 100 * p["accuracy"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
    base = [p for p in res.points if p["role"] == "baseline"]
    if base:
        ax.scatter([p["size_bytes"] / 1024 for p in base], [100 * p["accuracy"] for p in base], marker="x",
                   color="0.45", s=45, label="scratch baseline (fp32)", zorder=3)
        for p in base:
            ax.annotate(_short(p["member"]), (p["size_bytes"] / 1024, 100 * p["accuracy"]),
                        textcoords="offset points", xytext=(5, -10), fontsize=8, color="0.45")
    for p in (p for p in res.points if p["role"] == "teacher"):
        ax.scatter(p["size_bytes"] / 1024, 100 * p["accuracy"], marker="*", color="black", s=140,
                   label="teacher", zorder=4)
    shippable = [p for p in gens if p["verified"]]  # faded points failed verification: not on the front
    if len(shippable) < len(gens):
        ax.scatter([], [], marker="o", color="0.3", alpha=0.25, label="faded: failed verification")
    if shippable:
        _front(ax, [p["size_bytes"] / 1024 for p in shippable], [100 * p["accuracy"] for p in shippable])
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("size on disk (KiB, log scale)")
    ax.set_ylabel("test accuracy in its runtime (%)")
    ax.set_title(f"Size vs accuracy: {res.name}")
    ax.grid(True, which="both", alpha=0.3)
    if res.points:
        ax.legend(fontsize=8, loc="best")
    else:  # an interrupted run before its first member finished
        ax.text(0.5, 0.5, "no finished model yet", transform=ax.transAxes, ha="center", color="0.4")
    return _save(fig, directory, "size_vs_accuracy")


def latency_vs_accuracy(res: RunResults, target: str, directory: Path) -> list[Path]:
    plt = _plt()
    from matplotlib.lines import Line2D

    report = res.bench[target]
    fig, ax = plt.subplots(figsize=(10, 5))
    rows = [r for r in report["rows"] if "error" not in r]
    kinds = {}
    for r in rows:
        kind = KINDS[r["artifact"]]
        color, marker = kind.precision.color, kind.format.marker
        kinds[r["artifact"]] = (color, marker)
        shippable = r.get("runtime_on_target", True) and r.get("verified", True)
        alpha = 1.0 if shippable else 0.25  # faded: the board cannot run it, or it failed verification
        ax.scatter(r["p50_ms"], 100 * r["accuracy"], marker=marker, color=color, s=45, zorder=3, alpha=alpha)
        if r.get("unstable"):  # a noisy measurement, and the prediction scaled from it
            ax.scatter(r["p50_ms"], 100 * r["accuracy"], marker="o", facecolors="none", edgecolors="red", s=160,
                       linewidths=1.2, zorder=4)
        pred = r.get("predicted")
        if pred:
            ax.errorbar(pred["p50_ms"], 100 * r["accuracy"],
                        xerr=[[pred["p50_ms"] - pred["low_ms"]], [pred["high_ms"] - pred["p50_ms"]]],
                        fmt=marker, mfc="none", mec=color, ecolor=color, elinewidth=0.6, alpha=0.7 * alpha, ms=7,
                        zorder=2)
        if r["artifact"] in LABELLED:
            for x in (r["p50_ms"], (pred or {}).get("p50_ms")):
                if x:
                    ax.annotate(_short(r["member"]), (x, 100 * r["accuracy"]), textcoords="offset points",
                                xytext=(5, 4), fontsize=8)
    pts = [(target_p50(r, report), 100 * r["accuracy"]) for r in deployable(report)]
    if len(pts) > 1:  # the front of what could ship to the target, at its own latency
        _front(ax, [p[0] for p in pts], [p[1] for p in pts])
    budget = report["target"].get("latency_budget_ms")
    if budget:
        ax.axvline(budget, color="red", lw=1, ls=":", label=f"latency budget {budget:g} ms")
    where = "on the device" if report["measured_on"] == "device" else "on this host"
    handles = [Line2D([], [], ls="", marker=m, color=c, label=a) for a, (c, m) in kinds.items()]
    handles += [Line2D([], [], ls="", marker="o", color="0.3", label=f"filled: measured {where}")]
    if any(r.get("predicted") for r in rows):
        handles += [Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", color="0.3",
                           label=f"hollow: predicted for {target}\n(bar: interval)")]
    if any(r.get("unstable") for r in rows):
        handles += [Line2D([], [], ls="", marker="o", mfc="none", mec="red", ms=11,
                           label="red ring: unstable measurement")]
    if any(not (r.get("runtime_on_target", True) and r.get("verified", True)) for r in rows):
        handles += [Line2D([], [], ls="", marker="o", color="0.3", alpha=0.25,
                           label="faded: runtime not on the target,\nor failed verification")]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(f"p50 latency, batch {report['settings']['batch']} (ms, log scale)")
    ax.set_ylabel("test accuracy in its runtime (%)")
    ax.set_title(f"Latency vs accuracy: {target}")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, directory, f"latency_vs_accuracy_{target}")


def budget_candidates(res: RunResults, directory: Path) -> list[Path]:
    """Every candidate the budget search measured: latency on the target and/or size on disk vs
    parameters, one point per artifact kind, the budget as a line, the trained ones ringed."""
    plt = _plt()
    from matplotlib.lines import Line2D

    budget = res.manifest["budget"]
    panels = [(key, limit, label) for key, limit, label in (
        ("latency_ms", budget.get("latency_ms"), f"p50 latency on {budget.get('target')}, batch 1 (ms)"),
        ("bytes", budget.get("size_bytes"), "size on disk (KB)")) if limit is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    scale = {"latency_ms": 1.0, "bytes": 1e-3}  # sizes in KB, as a size budget is written
    kinds = {}
    for ax, (key, limit, label) in zip(axes[0], panels):
        for c in budget["candidates"]:
            for name, m in c["artifacts"].items():
                if key not in m:
                    continue
                kind = KINDS[name]
                kinds[name] = (kind.precision.color, kind.format.marker)
                ax.scatter(c["params"], m[key] * scale[key], marker=kind.format.marker, color=kind.precision.color,
                           s=30, alpha=1.0 if m[key] <= limit else 0.3, zorder=3)
            meets = c["artifacts"].get(c.get("meets") or "", {})
            if c.get("trained") and key in meets:  # ringed: the artifact that met the budget
                ax.scatter(c["params"], meets[key] * scale[key], marker="o", facecolors="none", edgecolors="black",
                           s=140, linewidths=1.2, zorder=4)
                ax.annotate(f"{_short(c['trained'])} {c['label']}", (c["params"], meets[key] * scale[key]),
                            textcoords="offset points", xytext=(7, -11), fontsize=8)
        ax.axhline(limit * scale[key], color="red", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel(f"{label}, log scale")
        ax.grid(True, which="both", alpha=0.3)
    how = budget["search"].get("latency", "")
    handles = [Line2D([], [], ls="", marker=m, color=c, label=a) for a, (c, m) in kinds.items()]
    handles += [Line2D([], [], color="red", lw=1, ls=":", label=f"budget {budget['budget']}"),
                Line2D([], [], ls="", marker="o", mfc="none", mec="black", ms=11,
                       label="trained (ring: the artifact\nthat met the budget)"),
                Line2D([], [], ls="", marker="o", color="0.3", alpha=0.3, label="faded: over this panel's limit")]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes[0][0].set_title(f"Budget search: {len(budget['candidates'])} untrained candidates"
                         + (f", latency {how}" if budget.get("latency_ms") is not None else ""))
    return _save(fig, directory, "budget_candidates")


def chain(res: RunResults, directory: Path) -> list[Path]:
    plt = _plt()
    members = res.manifest["members"]
    gens = sorted((m for m in members if m.startswith("gen-")), key=lambda m: int(m.split("-")[1]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = list(range(len(gens) + 1))
    labels = ["teacher"] + [f"{g}\n{members[g]['label']}" for g in gens]
    if "teacher" in members:
        ax.axhline(100 * members["teacher"]["test_acc"], color="black", lw=1, ls=":", label="teacher")
    ax.plot(xs[1:], [100 * members[g]["test_acc"] for g in gens], "o-", label="distilled (KD)", color="#1f77b4")
    controls = [controls_of(res.manifest, g) for g in gens]
    for kind, style in zip(shown_controls(controls), (dict(marker="x", ls="--", color="0.45"),
                                                      dict(marker="+", ls=":", color="0.6", ms=9))):
        if gens and all(kind in c for c in controls):
            ax.plot(xs[1:], [100 * c[kind]["test_acc"] for c in controls], **style,
                    label=f"scratch, {control_name(res.manifest['recipe'], kind)}")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(xs, labels, fontsize=8)
    order = "direct" if res.manifest["recipe"]["chain"]["direct"] else "teacher-assistant"
    ax.set_title(f"The chain: {res.name} ({order} order)")
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    params = [members.get("teacher", {}).get("params")] + [members[g]["params"] for g in gens]
    ax2.bar(xs, [p or 0 for p in params], alpha=0.15, color="#ff7f0e", label="parameters")
    if any(params):
        ax2.set_yscale("log")
    ax2.set_ylabel("parameters (log scale)")
    lines, names = ax.get_legend_handles_labels()
    l2, n2 = ax2.get_legend_handles_labels()
    ax.legend(lines + l2, names + n2, fontsize=8, loc="lower left")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    return _save(fig, directory, "chain")


def training_curves(res: RunResults, directory: Path) -> list[Path]:
    plt = _plt()
    names = [n for n in res.curves if n.startswith("gen-") or n == "teacher"]
    names.sort(key=lambda n: -1 if n == "teacher" else int(n.split("-")[1]))
    fig, axes = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    lows = []  # accuracy after the first quarter of training: the range worth reading
    for i, name in enumerate(names):
        rows = res.curves[name]
        color = RUN_COLORS[i % len(RUN_COLORS)]
        epochs = [r["epoch"] for r in rows]
        dot = "o" if len(rows) < 3 else None  # a one- or two-epoch curve is otherwise invisible
        axes[0].plot(epochs, [r["loss"] for r in rows], color=color, marker=dot, label=f"{name} total")
        bookkeeping = ("epoch", "phase", "loss", "val_acc", "val_loss", "lr", "seconds", "epochs")
        terms = [k for k in rows[0] if k not in bookkeeping]
        for term, ls in zip(terms, (":", "-.", (0, (1, 3)))):
            axes[0].plot(epochs, [r.get(term, float("nan")) for r in rows], color=color, ls=ls, lw=0.9,
                         label=f"{name} {term}")
        axes[1].plot(epochs, [100 * r["val_acc"] for r in rows], color=color, marker=dot, label=name)
        tune = next((r["epoch"] for r in rows if r.get("phase") == "finetune"), None)
        if tune is not None:  # hard-label fine-tuning starts here
            for ax in axes:
                ax.axvline(tune - 0.5, color=color, ls=":", lw=1)
            axes[1].annotate("fine-tune", (tune - 0.5, 0.02), xycoords=("data", "axes fraction"), color=color,
                             fontsize=7, rotation=90, ha="right", va="bottom")
        lows.append(min(100 * r["val_acc"] for r in rows[len(rows) // 4:]))
    axes[0].set_yscale("log")
    _plain_log_ticks(axes[0].yaxis)
    axes[0].set_ylabel("training loss (log scale)")
    axes[0].legend(fontsize=7, ncol=3)
    axes[0].set_title(f"Training curves: {res.name}")
    axes[1].set_ylabel("validation accuracy (%)")
    if lows:
        axes[1].set_ylim(max(0.0, min(lows) - 2), 100.5)  # the first epochs' low accuracy would squash the rest
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return _save(fig, directory, "training_curves")


def compare_size(runs: list[RunResults], directory: Path) -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, res in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        pts = [p for p in res.points if p["role"] == "gen" and p["artifact"] in LABELLED]
        pts.sort(key=lambda p: p["size_bytes"])
        ax.plot([p["size_bytes"] / 1024 for p in pts], [100 * p["accuracy"] for p in pts], "o-", color=color,
                label=f"{res.name} (distilled)")
        base = sorted((p for p in res.points if p["role"] == "baseline"), key=lambda p: p["size_bytes"])
        if base:
            ax.plot([p["size_bytes"] / 1024 for p in base], [100 * p["accuracy"] for p in base], "x:", color=color,
                    alpha=0.7, label=f"{res.name} (scratch)")
        for p in pts:
            ax.annotate(_short(p["member"]), (p["size_bytes"] / 1024, 100 * p["accuracy"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=color)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("fp32 size on disk (KiB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Runs compared: size vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, directory, "compare_size_vs_accuracy")
