"""`edgekd distill` end to end: train the chain, then export what the recipe asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgekd.distill.chain import distill
from edgekd.recipe import Recipe
from edgekd.runs import Run


def run_pipeline(recipe: Recipe | None, out: Path | None = None, resume: Path | None = None,
                 on_event: Callable[[dict], None] | None = None) -> Run:
    run = distill(recipe, out=out, resume=resume, on_event=on_event)
    export = run.manifest()["recipe"]["export"]
    if export["enabled"]:
        from edgekd.export.pipeline import export_run

        export_run(run.root, tuple(export["formats"]), export["int8"], export["calibration"], on_event=on_event)
    run.update_manifest(lambda m: m.update(status="done"))
    return run
