"""The budget search: candidate students, exported untrained, measured here, predicted for the target.

Before any training, a grid of architectures is built: the data's student family at widths
2, 1, 1/2, 1/4 and 1/8 of its default and at its default depth and half of it (10), then
every other built-in family that builds on the input shape at 1/2, 1/4 and 1/8 of its own
default width (3 each; a table keeps to the MLP). The grid is capped at budget.candidates
(24), the data's family first. Each candidate, untrained (latency and size do not depend on
the weights), is exported with edgekd.export.pipeline.export_model into a temporary folder
in every kind the budget allows, sized, and, for a latency budget, timed once in a fresh
process per artifact (edgekd.bench.local, 1 process, >= 0.05 s) and predicted for the
target (edgekd.bench.predict, as `edgekd bench` does). On a shared 2-core host that came to
243 s for 21 digits candidates in 5 ONNX and OpenVINO kinds, 14 s for 6 in ONNX fp32 alone.
edgekd.distill.budget then keeps those within the budget and plans the chain.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd import host, runtimes
from edgekd.bench.predict import METHOD
from edgekd.bench.remote import Remote
from edgekd.data import Splits
from edgekd.distill.budget import Budget, Candidate, closest, meeting_artifact, select_chain
from edgekd.distill.defaults import FAMILY_SIZES, Size, family_size
from edgekd.errors import UserError
from edgekd.models import ArchSpec, build, count_macs, count_params
from edgekd.recipe import Recipe
from edgekd.records import Events

PRIMARY_WIDTHS = (2.0, 1.0, 0.5, 0.25, 0.125)  # of the data's student width
OTHER_WIDTHS = (0.5, 0.25, 0.125)               # of another family's own default width
TIMING = dict(processes=1, warmup=3, min_iters=20, min_seconds=0.05, timeout_s=60.0)  # one cheap process each
CHECK_ROWS = 16  # export_model's parity check and accuracy: the weights are random, the check is a formality


@dataclass(frozen=True)
class Search:
    budget: Budget
    candidates: list[Candidate]
    chain: list[ArchSpec]
    record: dict       # what the manifest keeps under "budget"


def budget_of(recipe: Recipe) -> Budget:
    b = recipe.budget
    return Budget(b.latency_ms or None, b.size_bytes or None, _target_name(b.target) if b.target else None,
                  b.artifacts)


def _target_name(spec: str) -> str:
    from edgekd.targets import load_target

    return load_target(spec).name


def grid(family: str, size: tuple[int, int], others: bool, input_shape: tuple[int, ...], classes: int,
         cap: int, below_params: int | None = None) -> list[ArchSpec]:
    """The candidate architectures, the data's family first; those that do not build on this input, or
    have `below_params` parameters or more (the teacher's: a student is smaller), are left out."""
    width, depth = size
    sizes = [(family, w, d) for d in dict.fromkeys((depth, max(1, depth // 2)))
             for w in dict.fromkeys(max(1, round(width * f)) for f in PRIMARY_WIDTHS)]
    if others:
        for other in FAMILY_SIZES:
            own_width, own_depth = family_size(other)
            sizes += [(other, w, own_depth) for w in dict.fromkeys(max(1, round(own_width * f)) for f in OTHER_WIDTHS)
                      if other != family]
    specs, seen = [], set()
    for f, w, d in dict.fromkeys(sizes):
        spec = ArchSpec(f, w, d, tuple(input_shape), classes)
        try:
            model = build(spec)
        except UserError:
            continue  # a family that does not take this input shape
        params = count_params(model)
        if (below_params is not None and params >= below_params) or (f, d, params) in seen:
            continue  # as large as the teacher, or the same model again (mobilenetv2 builds widths below 8 as 8)
        seen.add((f, d, params))
        specs.append(spec)
        if len(specs) == cap:
            break
    return specs


def search(recipe: Recipe, splits: Splits, default: Size | None, mean, std, on_event: Events,
           below_params: int | None = None, remote: Remote | None = None) -> Search:
    """Measure the grid and plan the chain; refuse in one sentence when no candidate meets the budget."""
    budget = budget_of(recipe)
    family = recipe.student.arch or (default[0] if default else recipe.teacher.arch)
    size = default[1:] if default and default[0] == family else family_size(family)
    others = not recipe.student.arch and not splits.tabular  # a table's columns have no order to convolve
    specs = grid(family, size, others, splits.input_shape, splits.classes, recipe.budget.candidates, below_params)
    if not specs:
        smaller = f" with fewer parameters than the teacher ({below_params:,})" if below_params else ""
        raise UserError(f"no candidate student of family {family} builds on inputs of shape "
                        f"{tuple(splits.input_shape)}{smaller}")
    kinds = _kinds(recipe, budget)
    on_event({"kind": "message", "text": f"budget {budget.describe()}: measuring {len(specs)} candidate students "
                                         f"({', '.join(k.name for k in kinds)}) before training"})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgekd-budget-") as tmp:
        candidates, how = _measure(specs, kinds, recipe, splits, budget, Path(tmp), mean, std, on_event, remote)
    seconds = time.monotonic() - started
    chosen = select_chain(candidates, budget, recipe.chain.generations, recipe.budget.ratio)
    if not chosen:
        faster = " or choose a faster --target" if budget.latency_ms is not None else ""
        raise UserError(f"no candidate student meets the budget of {budget.describe()}: {closest(candidates, budget)} "
                        f"({len(candidates)} candidates measured); raise the budget, allow int8 and fp16 artifacts "
                        f"(export.int8, budget.artifacts){faster}")
    trained = {c.label: f"gen-{k}" for k, c in enumerate(chosen, start=1)}

    record = {"budget": budget.describe(), "latency_ms": budget.latency_ms, "size_bytes": budget.size_bytes,
              "target": budget.target, "artifacts": list(budget.artifacts) or [k.name for k in kinds],
              "ratio": recipe.budget.ratio, "generations_asked": recipe.chain.generations,
              "search": {"candidates": len(candidates), "seconds": round(seconds, 1), "latency": how,
                         "method": METHOD if budget.latency_ms is not None else None,
                         "timing": TIMING if budget.latency_ms is not None else None},
              "candidates": [{**c.to_dict(), "meets": meeting_artifact(c, budget), "trained": trained.get(c.label)}
                             for c in candidates],
              "verdicts": {}}
    on_event({"kind": "message", "text": f"budget: {sum(r['meets'] is not None for r in record['candidates'])} of "
                                         f"{len(candidates)} candidates meet it ({seconds:.0f} s); training "
                                         + ", ".join(f"{c.label} ({c.params:,} params)" for c in chosen)})
    archs = [ArchSpec(c.family, c.width, c.depth, splits.input_shape, splits.classes, mean, std) for c in chosen]
    return Search(budget, candidates, archs, record)


def _kinds(recipe: Recipe, budget: Budget) -> list[runtimes.Kind]:
    """The artifact kinds measured: those the export builds that the budget allows, and (latency) whose
    runtime the target lists."""
    built = runtimes.exported_kinds(recipe.export.formats, recipe.export.int8)
    allowed = [k for k in built if not budget.artifacts or k.name in budget.artifacts]
    if budget.artifacts and not allowed:
        raise UserError(f"budget.artifacts ({', '.join(budget.artifacts)}) lists no artifact the export builds "
                        f"({', '.join(k.name for k in built)}); widen export.formats or export.int8")
    if budget.latency_ms is not None:
        from edgekd.targets import load_target

        on_target = load_target(recipe.budget.target).runtimes
        allowed = [k for k in allowed if k.runtime.name in on_target]
        if not allowed:
            raise UserError(f"{budget.target} runs none of the allowed artifacts' runtimes "
                            f"({', '.join(sorted({k.runtime.name for k in built}))}); choose --target or formats")
    return allowed


def _measure(specs: list[ArchSpec], kinds: list[runtimes.Kind], recipe: Recipe, splits: Splits, budget: Budget,
             tmp: Path, mean, std, on_event: Events, remote: Remote | None = None) -> tuple[list[Candidate], str]:
    """Each candidate exported (sizes) and, for a latency budget, timed and predicted."""
    from edgekd.export.pipeline import calibration_set, export_model

    wanted = {k.name for k in kinds} | {runtimes.GRAPH_KIND.name}  # the predictor reads the fp32 graph
    for k in reversed(list(runtimes.KINDS.values())):  # and what each wanted kind is built from
        if k.name in wanted and k.needs:
            wanted.add(k.needs)
    build_kinds = [k for k in runtimes.KINDS.values() if k.name in wanted]
    x_check = splits.x_val[:CHECK_ROWS]
    calibration = calibration_set(splits.x_train, 64, recipe.train.seed)
    exported: list[tuple[Candidate, dict[str, Path]]] = []
    for i, spec in enumerate(specs, start=1):
        spec = ArchSpec(spec.family, spec.width, spec.depth, spec.input_shape, spec.classes, mean, std)
        on_event({"kind": "message", "text": f"  candidate {i}/{len(specs)}: {spec.label()} (export)"})
        torch.manual_seed(recipe.train.seed)
        model = build(spec).eval()
        directory = tmp / f"candidate-{i}"
        records = export_model(model, spec.input_shape, build_kinds, directory, calibration, x_check,
                               splits.x_test[:CHECK_ROWS], splits.y_test[:CHECK_ROWS], splits.classes)
        artifacts, paths = {}, {}
        for k in kinds:
            r = records.get(k.name, {})
            if r.get("built"):
                artifacts[k.name] = {"bytes": r["bytes"]}
                paths[k.name] = directory / k.file
            else:
                artifacts[k.name] = {"error": r.get("error", "not built")}
        paths[runtimes.GRAPH_KIND.name] = directory / runtimes.GRAPH_KIND.file
        exported.append((Candidate(spec.family, spec.width, spec.depth, count_params(model),
                                   count_macs(model, spec.input_shape), artifacts), paths))
    if budget.latency_ms is None:
        return [c for c, _ in exported], "not measured (size budget only)"
    return _time(exported, recipe, splits, tmp, on_event, remote)


def _time(exported: list[tuple[Candidate, dict[str, Path]]], recipe: Recipe, splits: Splits, tmp: Path,
          on_event: Events, remote: Remote | None = None) -> tuple[list[Candidate], str]:
    """Time every built artifact and turn it into the target's latency: measured on the device
    itself over ssh (`remote`), measured here when the target is this host, else predicted."""
    from edgekd.bench import predict
    from edgekd.bench.graph import graph_costs, weight_bytes
    from edgekd.bench.local import Job, Settings, measure_all
    from edgekd.bench.remote import Session
    from edgekd.targets import HOST, load_target, probe_host

    target = load_target(recipe.budget.target)
    threads = target.threads if remote else min(target.threads, host.cores())
    inputs = tmp / "test-rows.npz"  # the runner reads x and y
    np.savez(inputs, x=splits.x_test[:64], y=splits.y_test[:64])
    jobs = {(c.label, name): Job(c.label, name, paths[name], runtimes.kind(name).runtime.name)
            for c, paths in exported for name, m in c.artifacts.items() if "error" not in m}

    def progress(event: dict) -> None:
        on_event({"kind": "message", "text": f"  timing {event['member']} {event['artifact']}"})

    settings = Settings(threads=threads, **TIMING)
    if remote:
        session = Session(remote, inputs, list(jobs.values()))
        try:
            measured = measure_all(list(jobs.values()), settings, inputs, progress, run=session.run)
        finally:
            session.close()
    else:
        measured = measure_all(list(jobs.values()), settings, inputs, progress)
    predicts = target.name != HOST and not remote
    if predicts:
        from edgekd.bench.overhead import measure_overhead, overhead_of

        host_machine = predict.Machine.of(probe_host(), threads)
        target_machine = predict.Machine.of(target, target.threads)
        overhead = measure_overhead(threads, tmp / "overhead")  # tiny candidates are mostly dispatch
    out = []
    for c, paths in exported:
        graph = paths[runtimes.GRAPH_KIND.name]
        costs = (graph_costs(graph, 1), weight_bytes(graph)) if predicts and graph.exists() else None
        artifacts = {}
        for name, m in c.artifacts.items():
            timed = measured.get(jobs.get((c.label, name)), {"error": m.get("error", "not measured")})
            if "error" in timed:
                artifacts[name] = {**m, "error": timed["error"]}
                continue
            row = {**m, "latency_ms": timed["p50_ms"], **({"device_ms": timed["p50_ms"]} if remote
                                                          else {"host_ms": timed["p50_ms"]})}
            if predicts and costs:
                p = predict.predict_ms(timed["p50_ms"], costs[0], costs[1], runtimes.kind(name).precision.name,
                                       host_machine, target_machine, overhead_of(name, overhead))
                row.update(latency_ms=p["p50_ms"], low_ms=p["low_ms"], high_ms=p["high_ms"], predicted=True,
                           validated=p["validated"])
            artifacts[name] = row
        out.append(Candidate(c.family, c.width, c.depth, c.params, c.macs, artifacts))
    how = f"measured on {target.name} over ssh ({remote.destination})" if remote else \
        f"predicted for {target.name}" if predicts else "measured on this host"
    return out, how

