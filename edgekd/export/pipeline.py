"""Export every generation of a run: each artifact kind of the runtime table built, verified,
sized and hashed.

One artifact failing (an op an exporter cannot handle, a quantizer error) is recorded
with its reason; the others and the trained weights are untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgekd import host, runtimes
from edgekd.data import load_run_splits
from edgekd.data.rows import take
from edgekd.diskspace import DiskError, check_writable
from edgekd.distill.plugins import load_run_plugins
from edgekd.errors import UserError, reason
from edgekd.export.verify import agreement_inputs, verify
from edgekd.locking import run_lock
from edgekd.models import load_model
from edgekd.recipe import ExportRecipe
from edgekd.runs import Run, files_sha256, read_json, remove_leftovers, write_json

DEFAULT_CALIBRATION = ExportRecipe.calibration


def export_run(run_dir: Path, formats: tuple[str, ...] | None = None, int8: bool | None = None,
               calibration: int | None = None, on_event: Callable[[dict], None] | None = None,
               wait: bool = False) -> dict[str, dict]:
    """Export all finished generations; returns {member: {artifact: record}}. Settings left
    None come from the run's recipe; the ones used are written back to it, so the manifest
    says how the artifacts on disk were made. The run is locked meanwhile (edgekd.locking);
    `wait` queues behind another writer instead of refusing."""
    on_event = on_event or (lambda e: None)
    run = Run.open(run_dir)
    with run_lock(run.root, "export", wait=wait, on_event=on_event):
        remove_leftovers(run.root)
        return _export(run, formats, int8, calibration, on_event)


def _export(run: Run, formats: tuple[str, ...] | None, int8: bool | None, calibration: int | None,
            on_event: Callable[[dict], None]) -> dict[str, dict]:
    saved = run.manifest()["recipe"].get("export", {})
    formats = tuple(formats or saved.get("formats", runtimes.DEFAULT_FORMATS))
    int8 = saved.get("int8", True) if int8 is None else int8
    calibration = calibration or saved.get("calibration", DEFAULT_CALIBRATION)
    check_formats(formats)
    gens = run.generations("export")
    # generations get every kind; the teacher and the scratch baselines one, so the report can
    # place them on the same size axis
    plan = [(m, runtimes.exported_kinds(formats, int8)) for m in gens]
    extras = (["teacher"] if run.model_path("teacher").is_file() else []) + run.members("baseline")
    plan += [(m, [runtimes.SIZE_KIND]) for m in extras]
    manifest = run.manifest()
    recipe = manifest["recipe"]
    splits = load_run_splits(manifest, run.root)
    x_check = splits.x_val[:256]
    x_agree = agreement_inputs(splits.x_test, splits.x_val, splits.x_train)
    if int8 and calibration > len(splits.x_train):
        if calibration != DEFAULT_CALIBRATION:  # the default means "up to": only a number someone chose is news
            on_event({"kind": "warning", "text": f"calibration {calibration}: the training set has "
                                                 f"{len(splits.x_train)} rows; int8 is calibrated on all of them"})
        calibration = len(splits.x_train)
    load_run_plugins(manifest)  # a plugin family's models are rebuilt by its plugin
    loaded = {}
    for member, _ in plan:  # every model read before anything is written: a bad one changes nothing
        _check_writable(run.root / member)
        loaded[member] = load_model(run.model_path(member))
    calibration_rows = calibration_set(splits.x_train, calibration, recipe["train"]["seed"])
    results = {}
    for member, kinds in plan:
        model, spec = loaded[member]
        records = export_model(model, spec.input_shape, kinds, run.member_dir(member), calibration_rows, x_check,
                               x_agree, splits.y_test, splits.classes, relative_to=run.root,
                               on_event=lambda e, member=member: on_event({"kind": e["kind"], "member": member, **e}))
        kept = _earlier_records(run, manifest, member, records)
        records = dict(sorted({**kept, **records}.items(), key=lambda kv: runtimes.order(kv[0])))
        write_json(run.validation_path(member), records)
        run.update_manifest(lambda m: m["members"][member].update(artifacts=_summary(records)))
        results[member] = {name: {**r, "kept": True} if name in kept else r for name, r in records.items()}
    # the recipe says how to rebuild everything listed: this export's settings, widened by what it kept
    kept_kinds = [runtimes.kind(n) for records in results.values() for n, r in records.items() if r.get("kept")]
    formats = [f for f in runtimes.EXPORT_FORMATS if f in formats or any(k.format.name == f for k in kept_kinds)]
    int8_kept = any(k.precision.quantizes for k in kept_kinds)
    run.update_manifest(lambda m: m["recipe"].setdefault("export", {}).update(
        formats=formats, int8=int8 or int8_kept,
        calibration=calibration if int8 else saved.get("calibration", calibration)))
    return results


def export_model(model: torch.nn.Module, input_shape: tuple[int, ...], kinds: list[runtimes.Kind], directory: Path,
                 calibration_rows: np.ndarray, x_check: np.ndarray, x_agree: np.ndarray, y_test: np.ndarray,
                 classes: int, relative_to: Path | None = None,
                 on_event: Callable[[dict], None] | None = None) -> dict[str, dict]:
    """Build each kind (in build order) of one model into `directory`, verify it against the
    model and size and hash it: {artifact: record}. A kind that fails is recorded with its
    reason, and the kinds built from it are recorded as not built; the others go on. `x_agree`
    holds the test rows (scored against `y_test`) first, then more rows for agreement
    (edgekd.export.verify.agreement_inputs)."""
    on_event = on_event or (lambda e: None)

    @torch.inference_mode()
    def torch_predict(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def path_of(kind: runtimes.Kind) -> Path:
        return directory / kind.file

    records: dict[str, dict] = {}
    for kind in kinds:
        on_event({"kind": "export", "artifact": kind.name})
        if kind.needs and not records.get(kind.needs, {}).get("built"):
            records[kind.name] = {"artifact": kind.name, "built": False, "passed": False,
                                  "error": f"not built: {kind.needs} is missing or failed"}
            continue
        path = path_of(kind)
        source = path_of(runtimes.kind(kind.needs)) if kind.needs else None
        try:
            info = kind.build(runtimes.ExportContext(model, input_shape, calibration_rows, source, path))
            record = verify(path, kind, torch_predict, x_check, x_agree, y_test, classes, threads=host.cores())
        except DiskError:  # not this artifact's fault: every later write would fail alike
            raise
        except Exception as e:  # reported per artifact; the others go on
            records[kind.name] = {"artifact": kind.name, "built": False, "passed": False,
                                  "error": f"{type(e).__name__}: {reason(e, 300)}"}
            continue
        files = kind.files(path)
        records[kind.name] = {**record, "built": True, "file": str(path.relative_to(relative_to or directory)),
                              "bytes": sum(f.stat().st_size for f in files),
                              "weight_bytes": kind.runtime.module.weight_bytes(path),
                              "sha256": files_sha256(files), **info}
    return records


def check_formats(formats: tuple[str, ...]) -> None:
    """Known formats whose converter and runtime are installed, or one sentence saying which is not."""
    unknown = [f for f in formats if f not in runtimes.EXPORT_FORMATS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; valid formats: {', '.join(runtimes.EXPORT_FORMATS)}")
    for f in formats:
        runtime = runtimes.FORMATS[f].runtime
        if not runtime.installed(converters=True):
            raise UserError(f"--format {f}: {runtime.missing()}")


def calibration_set(x_train: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """The int8 calibration rows: a seeded sample of the training set."""
    count = min(size, len(x_train))
    return take(x_train, np.random.default_rng(seed).choice(len(x_train), count, replace=False))


def _earlier_records(run: Run, manifest: dict, member: str, rebuilt: dict[str, dict]) -> dict[str, dict]:
    """Verified artifacts of an earlier export that this one did not rebuild (a narrower
    --format or --no-int8): kept while their files are on disk as they were verified. The model they came
    from never changes once its generation is finished."""
    try:
        earlier = read_json(run.validation_path(member))
    except UserError:
        earlier = manifest["members"][member].get("artifacts", {})
    kept = {}
    for name, r in (earlier.items() if isinstance(earlier, dict) else []):
        if name in rebuilt or name not in runtimes.KINDS or not isinstance(r, dict) or not r.get("passed") \
                or "file" not in r:
            continue  # a failed artifact is not carried over: a later export may rebuild it
        if r.get("sha256") and run.artifact_change(name, r) is None:
            kept[name] = r
    return kept


def _summary(records: dict[str, dict]) -> dict[str, dict]:
    keep = ("built", "passed", "problems", "file", "bytes", "weight_bytes", "sha256", "accuracy", "agreement",
            "agreement_rows", "max_abs_diff", "error")
    return {name: {k: r[k] for k in keep if k in r} for name, r in records.items()}


def _check_writable(directory: Path) -> None:
    check_writable(directory)
    check_writable(directory / "export")
