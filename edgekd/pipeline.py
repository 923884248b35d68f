"""`edgekd distill` end to end: train the chain, export, benchmark, report, as the recipe asks."""

from __future__ import annotations

from pathlib import Path

from edgekd.distill.chain import distill
from edgekd.recipe import Recipe, check_call
from edgekd.records import Events
from edgekd.runs import Run


def run_pipeline(recipe: Recipe | None, out: Path | None = None, resume: Path | None = None,
                 on_event: Events | None = None, threads: int | None = None) -> tuple[Run, dict]:
    """The run, and what its bench measured now ({target: bench result}; {} without a bench)."""
    check_call(recipe, out=out, resume=resume, threads=threads)
    on_event = on_event or (lambda e: None)
    measured = {}
    run = distill(recipe, out=out, resume=resume, on_event=on_event, threads=threads)
    saved = run.manifest()["recipe"]
    export, bench = saved["export"], saved["bench"]
    if export["enabled"]:
        from edgekd.export.pipeline import export_run
        from edgekd.runtimes import describe

        on_event({"kind": "message", "text": "exporting every generation to "
                  + describe(tuple(export["formats"]), export["int8"])})
        export_run(run.root, tuple(export["formats"]), export["int8"], export["calibration"], on_event=on_event)
        if bench["enabled"] and bench["targets"]:
            from edgekd.bench.pipeline import bench_run

            on_event({"kind": "message", "text": f"benchmarking for {', '.join(bench['targets'])}"})
            measured = bench_run(run.root, list(bench["targets"]), processes=bench["processes"],
                                 min_seconds=bench["min_seconds"], on_event=on_event)
    from edgekd.report.render import build_report

    build_report(run.root)
    run.update_manifest(lambda m: m.update(status="done"))
    return run, measured
