"""The chain table `edgekd distill` prints: one row per generation, beside the teacher and
the linear reference, with each accuracy's 95% interval on the test rows and each scratch
control's accuracy and the gain over it, marked where it is within noise (the report draws
its own tables from `edgekd.report.results`)."""

from __future__ import annotations

from edgekd.report.uncertainty import brackets, member_gain, test_rows
from edgekd.runs import LINEAR, Run, control_names

# the row keys of each scratch control: its accuracy, the gain over it, the gain's text
CONTROL_FIELDS = {"steps": ("baseline_acc", "delta", "gain"),
                  "epochs": ("scratch_acc", "scratch_delta", "scratch_gain")}


def summary_rows(run: Run) -> list[dict]:
    """The teacher, then one row per generation: arch, size, teacher, accuracy and its interval, agreement, and
    each scratch control's accuracy and the gain over it (baseline_acc, delta, gain: the same
    steps; scratch_*: the recipe's epochs). `gain` reads "+1.2 [-0.3, +2.6] (within noise)"."""
    manifest = run.manifest()
    members = manifest["members"]
    n = test_rows(manifest)
    rows = []

    if "teacher" in members:
        t = members["teacher"]
        rows.append({"member": "teacher", "arch": t.get("label", t.get("arch", {}).get("family", t.get("kind"))),
                     "params": t.get("params"), "size_bytes": t.get("size_bytes"), "test_acc": t["test_acc"],
                     "test_ci": brackets(t["test_acc"], n), "test_rows": n})
    k = 1
    while f"gen-{k}" in members:
        name = f"gen-{k}"
        g = members[name]
        c = control_names(manifest, name)
        row = {"member": name, "arch": g["label"], "params": g["params"], "macs": g["macs"],
               "size_bytes": g["size_bytes"], "teacher": g["teacher"], "test_acc": g["test_acc"],
               "test_ci": brackets(g["test_acc"], n), "test_rows": n, "agreement": g.get("agreement"),
               "budget": manifest.get("budget", {}).get("verdicts", {}).get(name, {}).get("text")}
        for kind, (acc, delta, text) in CONTROL_FIELDS.items():
            b = members[c[kind]] if kind in c else None
            gain = member_gain(run, manifest, name, c[kind]) if b else None
            row.update({acc: b["test_acc"] if b else None, delta: g["test_acc"] - b["test_acc"] if b else None,
                        text: gain.text(short=True) if gain else None,
                        f"{delta}_within_noise": gain.within_noise if gain else None})
        rows.append(row)
        k += 1
    return rows


def linear_row(run: Run) -> dict | None:
    """The linear reference as a row of the chain table (None for runs made before it)."""
    manifest = run.manifest()
    if LINEAR not in manifest:
        return None
    n, acc = test_rows(manifest), manifest[LINEAR]["test_acc"]
    return {"member": LINEAR, "arch": "logistic regression", "test_acc": acc, "test_rows": n,
            "test_ci": brackets(acc, n)}

