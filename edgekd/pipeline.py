"""`edgekd distill` end to end: train the chain, export, benchmark, report, as the recipe asks."""

from __future__ import annotations

from pathlib import Path

from edgekd.bench.remote import Remote
from edgekd.distill import distributed
from edgekd.distill.chain import Placement, chain_lock, distill, resume_hint, run_root
from edgekd.recipe import Recipe, check_call
from edgekd.records import Events
from edgekd.runs import Run


def run_pipeline(recipe: Recipe | None, out: Path | None = None, resume: Path | None = None,
                 on_event: Events | None = None, threads: int | None = None, wait: bool = False,
                 remote: Remote | None = None, compute: Placement = (None, None)) -> tuple[Run, dict]:
    """The run, and what its bench measured now ({target: bench result}; {} without a bench).
    The run directory stays locked from training to report (edgekd.locking): no other writer
    can slip in between the stages; `wait` queues behind one instead of refusing. `remote`:
    the target device over ssh, which measures the budget's candidates and the bench;
    `compute`: the device and precision a resumed run continues on (None: as saved)."""
    check_call(recipe, out=out, resume=resume, threads=threads)
    on_event = on_event or (lambda e: None)
    root = run_root(out, resume)
    with distributed.session(cuda=_on_gpu(recipe, compute[0])), \
            distributed.private_root(root, resume is not None) as mine:
        if mine != root:  # another rank of a torchrun: it trains beside rank 0, which writes the run
            distill(recipe if resume is None else None, out=mine if resume is None else None,
                    resume=mine if resume is not None else None, threads=threads, compute=compute)
            return Run(root), {}
        with chain_lock(root, resume, wait, on_event), resume_hint(root):
            return _stages(recipe, root if resume is None else None, resume, on_event, threads, remote, compute)


def _on_gpu(recipe: Recipe | None, device: str | None = None) -> bool:
    """Whether the ranks talk over NCCL (GPUs) rather than gloo: a resumed run's device is in
    its saved recipe, read later, so any CUDA machine not told cpu counts."""
    import torch

    device = device or (recipe.train.device if recipe is not None else "auto")
    return torch.cuda.is_available() and device.strip().lower() != "cpu"


def _stages(recipe: Recipe | None, out: Path | None, resume: Path | None, on_event: Events,
            threads: int | None, remote: Remote | None = None, compute: Placement = (None, None)) -> tuple[Run, dict]:
    measured = {}
    run = distill(recipe, out=out, resume=resume, on_event=on_event, threads=threads, remote=remote, compute=compute)
    saved = run.manifest()["recipe"]
    export, bench = saved["export"], saved["bench"]
    if export["enabled"]:
        from edgekd.export.pipeline import export_run
        from edgekd.runtimes import describe

        on_event({"kind": "message", "text": "exporting every generation to "
                  + describe(tuple(export["formats"]), export["int8"])})
        export_run(run.root, tuple(export["formats"]), export["int8"], export["calibration"], on_event=on_event)
        budget = run.manifest().get("budget")
        targets = list(bench["targets"]) if bench["enabled"] else []
        spec = saved.get("budget", {}).get("target")  # as given: a profile's name or a .toml path
        if budget and spec and spec not in targets:  # the budget's check needs its target's bench
            targets.append(spec)
        if targets:
            from edgekd.bench.pipeline import bench_run

            on_event({"kind": "message", "text": f"benchmarking for {', '.join(targets)}"})
            measured = bench_run(run.root, targets, processes=bench["processes"],
                                 min_seconds=bench["min_seconds"], remote=remote, on_event=on_event)
        if budget:
            _recheck_budget(run, measured, on_event)
    from edgekd.report.render import build_report

    build_report(run.root)
    run.update_manifest(lambda m: m.update(status="done"))
    return run, measured


def _recheck_budget(run: Run, measured: dict, on_event: Events) -> None:
    """Every trained generation against the budget again, recorded in the manifest and shown."""
    from edgekd.distill.budget import recheck
    from edgekd.runs import read_bench

    budget = run.manifest()["budget"]
    bench = measured.get(budget["target"]) if budget["target"] else None
    if budget["target"] and bench is None and run.bench_path(budget["target"]).is_file():
        bench = read_bench(run.bench_path(budget["target"]))
    verdicts = recheck(run.manifest(), bench)
    run.update_manifest(lambda m: m["budget"].update(verdicts=verdicts))
    for member, v in verdicts.items():
        on_event({"kind": "message", "text": f"budget {budget['budget']}: {member} {v['text']}"})
