"""The report's budget section: every candidate the search measured, and each trained
generation's verdict against the budget (the manifest's "budget", edgekd.distill.candidates)."""

from __future__ import annotations

from edgekd.distill.budget import ms_text, size_text


def budget_summary(budget: dict) -> str:
    candidates = budget["candidates"]
    met = sum(c.get("meets") is not None for c in candidates)
    trained = ", ".join(f"{c['trained']} {c['label']}" for c in sorted(
        (c for c in candidates if c.get("trained")), key=lambda c: int(c["trained"].split("-")[1])))
    verdicts = budget.get("verdicts") or {}
    checked = "; ".join(f"{g} {v['text']}" for g, v in verdicts.items()) or "not checked after training"
    search = budget["search"]
    how = f", latency {search['latency']}" if budget.get("latency_ms") is not None else ""
    return (f"Budget {budget['budget']}: {met} of {len(candidates)} candidate students met it untrained "
            f"(search {search['seconds']:g} s{how}); trained {trained}. After training: {checked}.")


def budget_table(budget: dict) -> list[list[str]]:
    """One row per candidate: its artifact that meets the budget (or, when none does, its fastest or smallest)."""
    latency = budget.get("latency_ms") is not None
    key = "latency_ms" if latency else "bytes"
    rows = [["candidate", "params", "MACs", "meets with",
             *([f"p50 on {budget['target']}"] if latency else []), "size", "trained as"]]
    for c in sorted(budget["candidates"], key=lambda c: (-c["macs"], -c["params"])):
        measured = {n: m for n, m in c["artifacts"].items() if key in m}
        name = c.get("meets") or (min(measured, key=lambda n: measured[n][key]) if measured else None)
        m = measured.get(name, {})
        rows.append([c["label"], f"{c['params']:,}", f"{c['macs']:,}",
                     c.get("meets") or (f"none (best: {name})" if name else "none"),
                     *([ms_text(m["latency_ms"]) if "latency_ms" in m else "-"] if latency else []),
                     size_text(m["bytes"]) if "bytes" in m else "-", c.get("trained") or "-"])
    return rows
