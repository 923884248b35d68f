"""The chain table `edgekd distill` prints: one row per generation, beside the teacher,
with each scratch control's accuracy and the gain over it (the report draws its own
tables from `edgekd.report.results`)."""

from __future__ import annotations

from edgekd.runs import Run, controls_of

# the row keys of each scratch control
CONTROL_FIELDS = {"steps": ("baseline_acc", "delta"), "epochs": ("scratch_acc", "scratch_delta")}


def summary_rows(run: Run) -> list[dict]:
    """One row per generation: arch, size, teacher, accuracy, agreement, and each scratch control's
    accuracy and the gain over it (baseline_acc, delta: the same steps; scratch_*: the recipe's epochs)."""
    manifest = run.manifest()
    members = manifest["members"]
    rows = []
    if "teacher" in members:
        t = members["teacher"]
        rows.append({"member": "teacher", "arch": t.get("label", t.get("arch", {}).get("family", t.get("kind"))),
                     "params": t.get("params"), "size_bytes": t.get("size_bytes"), "test_acc": t["test_acc"]})
    k = 1
    while f"gen-{k}" in members:
        g = members[f"gen-{k}"]
        c = controls_of(manifest, f"gen-{k}")
        row = {"member": f"gen-{k}", "arch": g["label"], "params": g["params"], "macs": g["macs"],
               "size_bytes": g["size_bytes"], "teacher": g["teacher"], "test_acc": g["test_acc"],
               "agreement": g.get("agreement")}
        for kind, (acc, delta) in CONTROL_FIELDS.items():
            b = c.get(kind)
            row.update({acc: b["test_acc"] if b else None, delta: g["test_acc"] - b["test_acc"] if b else None})
        rows.append(row)
        k += 1
    return rows
