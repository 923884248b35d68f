"""`edgekd bench`: measure every exported artifact and predict it for each target.

Per target: the artifacts are measured on this host with the target's thread count
(capped at the host's cores), or on the device itself with `remote`; then each host
number is turned into a predicted target latency (bench.predict). Results go to
bench/<target>.json, replaced atomically. Every row records the hash of the artifact it
timed; rows of the earlier file for artifacts not measured this time (a narrower --runtime)
are kept when they were measured the same way and the artifact has not changed since.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgekd import host, runtimes
from edgekd.bench import predict
from edgekd.bench.graph import graph_costs, weight_bytes
from edgekd.bench.local import Job, Settings, measure_all
from edgekd.bench.overhead import Overhead, measure_overhead, overhead_of
from edgekd.bench.remote import Remote, Session
from edgekd.data import load_run_splits
from edgekd.data.rows import save_npz
from edgekd.diskspace import check_writable
from edgekd.errors import UserError
from edgekd.locking import run_lock
from edgekd.runs import Run, atomic_path, read_bench, remove_leftovers, write_json
from edgekd.targets import HOST, Target, busy_warning, load_target, probe_host

SCHEMA = 1
RUNTIMES = tuple(runtimes.RUNTIMES)


def bench_run(run_dir: Path, targets: list[str], runtime_names: tuple[str, ...] = RUNTIMES, batch: int = 1,
              processes: int = 3, min_seconds: float = 0.5, remote: Remote | None = None,
              on_event: Callable[[dict], None] | None = None, wait: bool = False,
              native: bool = False) -> dict[str, dict]:
    """{target: bench result}, each written to the run's bench file. The run is locked
    meanwhile (edgekd.locking): an export cannot swap the files being timed; `wait` queues
    behind another writer instead of refusing. `native` also runs each runtime's own benchmark
    tool where its module has one (OpenVINO's benchmark_app), here or on the device: the rows
    get native_p50_ms and the command, or the result a note saying the tool is missing."""
    run = Run.open(run_dir)
    with run_lock(run.root, "bench", wait=wait, on_event=on_event):
        remove_leftovers(run.root)
        for directory in (run.root, run.bench_dir, run.report_dir):  # before minutes of measuring
            check_writable(directory)
        return _bench(run, targets, runtime_names, batch, processes, min_seconds, remote, on_event, native)


def _bench(run: Run, targets: list[str], runtime_names: tuple[str, ...], batch: int, processes: int,
           min_seconds: float, remote: Remote | None, on_event: Callable[[dict], None] | None,
           native: bool = False) -> dict[str, dict]:
    bad = [r for r in runtime_names if r not in RUNTIMES]
    if bad:
        raise UserError(f"unknown runtime {bad[0]!r}; valid runtimes: {', '.join(RUNTIMES)}")
    if remote and len(targets) != 1:
        raise UserError("--remote measures one device: give exactly one --target")
    resolved = [load_target(t) for t in targets]
    manifest = run.manifest()
    jobs, changed = _jobs(run, manifest, runtime_names, remote is not None)
    inputs = _inputs(run, manifest)
    with np.load(inputs) as cached:
        if batch > len(cached["y"]):
            raise UserError(f"--batch {batch} is larger than the test set ({len(cached['y'])} samples)")
    host_target = probe_host()
    warning = busy_warning(host_target)
    if warning and on_event and any(t.name != HOST for t in resolved) and not remote:  # predictions scale from it
        on_event({"kind": "warning", "text": warning})
    cache: dict[int, dict[Job, dict]] = {}
    overheads: dict[int, Overhead | None] = {}
    results = {}
    for target in resolved:
        threads = target.threads if remote else min(target.threads, host.cores())
        settings = Settings(threads=threads, batch=batch, processes=processes, min_seconds=min_seconds,
                            native=native)
        if remote and not jobs:  # every artifact changed since export: nothing to upload
            measured = dict(changed)
        elif remote:
            session = Session(remote, inputs, jobs)
            try:
                measured = {**changed, **measure_all(jobs, settings, inputs, on_event, run=session.run)}
            finally:
                session.close()
        else:
            if threads not in cache:
                cache[threads] = {**changed, **measure_all(jobs, settings, inputs, on_event)}
            measured = cache[threads]
        if not remote and target.name != HOST and threads not in overheads:  # what the prediction subtracts
            with tempfile.TemporaryDirectory() as scratch:
                overheads[threads] = measure_overhead(threads, Path(scratch), repeats=1)
        report = _report(run, manifest, target, host_target, measured, settings, remote, overheads.get(threads))
        kept = _earlier_rows(run, manifest, report, on_event or (lambda e: None))
        report["rows"] = sorted(report["rows"] + kept, key=_row_order)
        report["kept_rows"] = len(kept)
        write_json(run.bench_path(target.name), report)
        results[target.name] = report
    return results


def _jobs(run: Run, manifest: dict, wanted: tuple[str, ...], remote: bool) -> tuple[list[Job], dict[Job, dict]]:
    """What to measure, and the artifacts not to: files changed or gone since their export
    become error rows (they would carry the recorded size, accuracy and hash of something else)."""
    members = manifest["members"]
    gens = run.generations("benchmark")  # before the export hint below: exporting would not help
    if not any(a.get("built") for g in gens for a in members[g].get("artifacts", {}).values()):
        raise UserError(f"{run.root} has no exported artifacts to benchmark; run `edgekd export {run.root}` first")
    reference = runtimes.REFERENCE
    host_only = [r for r in wanted if runtimes.RUNTIMES[r].host_only]
    jobs, changed = [], {}
    for member in gens:
        if reference.runtime.name in wanted and not remote:  # the eager reference needs edgekd: host only
            jobs.append(Job(member, reference.name, run.artifact_path(member, reference), reference.runtime.name))
        for name, art in members[member].get("artifacts", {}).items():
            if name not in runtimes.KINDS:
                continue  # a kind this version does not know: left to the version that made it
            runtime = runtimes.kind(name).runtime.name
            if art.get("built") and runtime in wanted and not (remote and runtime in host_only):
                job = Job(member, name, run.root / art["file"], runtime)
                problem = run.artifact_change(name, art)
                if problem:
                    changed[job] = {"error": f"{problem}; run `edgekd export` again"}
                else:
                    jobs.append(job)
    if not jobs and not changed:
        raise UserError(f"no artifact of {run.root} runs on {', '.join(wanted)}"
                        + (f" ({', '.join(host_only)} runs on this host only)" if remote and host_only else ""))
    return jobs, changed


def _row_order(row: dict) -> tuple:
    role, _, index = row["member"].partition("-")
    return role, int(index) if index.isdigit() else 0, runtimes.order(row["artifact"])


def _provenance(rep: dict) -> dict:
    """What two bench results must share for their rows to sit in one table: where and on
    what they were measured, with which library versions, threads and batch."""
    target = rep.get("target") if isinstance(rep.get("target"), dict) else {}
    machine = rep.get("host") if isinstance(rep.get("host"), dict) else {}
    settings = rep["settings"]
    return {"device": (rep.get("measured_on"), rep.get("device")),
            "target profile": target.get("name") if target.get("probed") else target,  # host: re-probed each time
            "machine": (machine.get("cpu"), machine.get("node")), "library versions": rep.get("versions"),
            "thread count": settings.get("threads"), "batch": settings.get("batch")}


def _earlier_rows(run: Run, manifest: dict, report: dict, on_event: Callable[[dict], None]) -> list[dict]:
    """Rows of the previous result for this target that this bench did not measure again,
    kept when they were measured alike and still describe the artifact on disk."""
    try:
        old = read_bench(run.bench_path(report["target"]["name"]))
    except UserError:
        return []  # none yet, or damaged: replaced
    measured = {(r["member"], r["artifact"]) for r in report["rows"]}
    unmeasured = [r for r in old["rows"] if isinstance(r, dict) and "error" not in r  # a failure is retried, not kept
                  and (r.get("member"), r.get("artifact")) not in measured and run.timed_current(r, manifest)]
    then, now = _provenance(old), _provenance(report)
    if then != now:
        if unmeasured:
            differ = ", ".join(k for k in now if then[k] != now[k])
            on_event({"kind": "warning", "text": f"dropped {len(unmeasured)} row(s) of the earlier "
                      f"{report['target']['name']} bench, measured with a different {differ} "
                      "(they cannot share a table)"})
        return []
    # what the kept rows were measured and predicted with, where the file-level record is now this bench's
    earlier = {"min_seconds": old["settings"].get("min_seconds"),
               **{k: (old.get("host") or {}).get(k) for k in ("peak_gflops_fp32", "memory_bandwidth_gbs")}}
    return [{"earlier": earlier, **r, "kept": True} for r in unmeasured]  # a row kept twice keeps its first record


def _inputs(run: Run, manifest: dict) -> Path:
    """The test set as one .npz, cached in the run: the runner (here or on a device) reads it."""
    path = run.bench_inputs_path
    if path.exists():
        try:
            with np.load(path) as cached:
                if cached["x"].ndim >= 2 and len(cached["x"]) == len(cached["y"]):
                    return path
        except Exception:  # a damaged cache (truncated, not an npz, pickled) is rebuilt below
            pass
    splits = load_run_splits(manifest, run.root)
    with atomic_path(path, splits.x_test.nbytes + splits.y_test.nbytes) as tmp:
        with open(tmp, "wb") as f:
            save_npz(f, x=splits.x_test, y=splits.y_test)
    return path


def _costs(fp32_onnx: Path, batch: int) -> tuple | None:
    """The graph's work and weights, or None when the file is damaged: the measurements of this
    member's other artifacts still count, only the prediction is lost."""
    try:
        return graph_costs(fp32_onnx, batch), weight_bytes(fp32_onnx)
    except Exception:  # protobuf DecodeError, shape-inference errors: any unreadable graph
        return None


def _report(run: Run, manifest: dict, target: Target, host_target: Target, measured: dict[Job, dict],
            settings: Settings, remote: Remote | None, overhead: Overhead | None = None) -> dict:
    rows = []
    host_machine = predict.Machine.of(host_target, settings.threads)
    target_machine = predict.Machine.of(target, target.threads)
    costs_of: dict[str, tuple] = {}
    predicts = not remote and target.name != HOST  # on a device, or on the host itself, measured is the answer
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for job, m in measured.items():
        art = manifest["members"][job.member].get("artifacts", {}).get(job.artifact, {})
        size = art["bytes"] if "bytes" in art else (job.path.stat().st_size if job.path.exists() else None)
        row = {"member": job.member, "artifact": job.artifact, "runtime": job.runtime,
               "precision": runtimes.kind(job.artifact).precision.name, "size_bytes": size,
               "sha256": run.artifact_sha256(job.member, job.artifact, manifest), "measured_at": created,
               "runtime_on_target": job.runtime in target.runtimes,
               "verified": run.artifact_verified(job.member, job.artifact, manifest)}
        if "error" in m:
            rows.append({**row, "error": m["error"]})
            continue
        row.update(m)
        row["measured_on"] = "device" if remote else "host"
        # the whole process (runtime + model) must fit in half the RAM: the OS and the app need the rest
        row["fits_ram"] = m["peak_rss_mb"] < 0.5 * target.ram_gb * 1024
        fp32_onnx = run.artifact_path(job.member, runtimes.GRAPH_KIND)
        if fp32_onnx.exists():
            if job.member not in costs_of:
                costs_of[job.member] = _costs(fp32_onnx, settings.batch)
            if costs_of[job.member] is None:
                row["prediction_error"] = f"no prediction: {job.member}/{fp32_onnx.name} cannot be read"
                rows.append(row)
                continue
            costs, weights = costs_of[job.member]
            row["flops"] = sum(c.flops for c in costs)
            if not remote:  # floor / measured, both on this host
                row["efficiency_vs_floor"] = predict.host_efficiency(m["p50_ms"], costs, weights, row["precision"],
                                                                     host_machine)
            if predicts:
                row["predicted"] = predict.predict_ms(m["p50_ms"], costs, weights, row["precision"],
                                                      host_machine, target_machine, overhead_of(job.artifact, overhead))
        rows.append(row)
    return {
        "schema": SCHEMA, "target": target.to_dict(), "measured_on": "device" if remote else "host",
        "device": remote.destination if remote else None,
        "host": {**host.describe(), "peak_gflops_fp32": host_target.peak_gflops_fp32,
                 "memory_bandwidth_gbs": host_target.memory_bandwidth_gbs, "probe_busy_cpus": host_target.busy_cpus},
        "versions": host.versions(), "created": created,
        "settings": {"threads": settings.threads, "batch": settings.batch, "processes": settings.processes,
                     "warmup": settings.warmup, "min_iters": settings.min_iters, "min_seconds": settings.min_seconds,
                     "native": settings.native},
        "prediction_method": predict.METHOD if predicts else None, "rows": rows,
        "overhead": overhead.to_dict() if predicts and overhead else None,
        "notes": _native_notes(rows),
    }


def _native_notes(rows: list[dict]) -> list[str]:
    """Why a requested native column is empty, once per reason (not once per row)."""
    return [f"no native column: {why}" for why in dict.fromkeys(r["native_missing"] for r in rows
                                                                 if "native_missing" in r)]
