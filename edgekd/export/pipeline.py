"""Export every generation of a run: each artifact built, verified, sized and hashed.

One artifact failing (an op an exporter cannot handle, a quantizer error) is recorded
with its reason; the others and the trained weights are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgekd import host
from edgekd.bench.graph import weight_bytes
from edgekd.data import load_run_splits
from edgekd.errors import UserError, reason
from edgekd.export import onnx as onnx_export
from edgekd.export import openvino as ov_export
from edgekd.export import quantize
from edgekd.export.verify import verify
from edgekd.models import load_model
from edgekd.recipe import EXPORT_FORMATS as FORMATS
from edgekd.recipe import ExportRecipe
from edgekd.runs import Run, artifact_files, files_sha256, read_json, write_json


DEFAULT_CALIBRATION = ExportRecipe.calibration


@dataclass(frozen=True)
class Step:
    fmt: str
    precision: str
    needs: tuple[str, str] | None       # the artifact it is built from
    build: Callable                     # (ctx) -> info dict


def _steps(ctx: "_Member") -> list[Step]:
    run, m = ctx.run, ctx.member
    path = lambda f, p: run.artifact_path(m, f, p)
    return [
        Step("onnx", "fp32", None, lambda: onnx_export.export_onnx(ctx.model, ctx.input_shape, path("onnx", "fp32"))),
        Step("onnx", "int8", ("onnx", "fp32"), lambda: quantize.quantize_onnx(
            path("onnx", "fp32"), path("onnx", "int8"), ctx.calibration, onnx_export.INPUT)),
        Step("openvino", "fp32", ("onnx", "fp32"), lambda: ov_export.onnx_to_ir(
            path("onnx", "fp32"), path("openvino", "fp32"), fp16=False)),
        Step("openvino", "fp16", ("onnx", "fp32"), lambda: ov_export.onnx_to_ir(
            path("onnx", "fp32"), path("openvino", "fp16"), fp16=True)),
        Step("openvino", "int8", ("openvino", "fp32"), lambda: quantize.quantize_openvino(
            path("openvino", "fp32"), path("openvino", "int8"), ctx.calibration)),
    ]


@dataclass
class _Member:
    run: Run
    member: str
    model: torch.nn.Module
    input_shape: tuple[int, ...]
    calibration: np.ndarray


def export_run(run_dir: Path, formats: tuple[str, ...] | None = None, int8: bool | None = None,
               calibration: int | None = None, on_event: Callable[[dict], None] | None = None) -> dict[str, dict]:
    """Export all finished generations; returns {member: {artifact: record}}. Settings left
    None come from the run's recipe; the ones used are written back to it, so the manifest
    says how the artifacts on disk were made."""
    on_event = on_event or (lambda e: None)
    run = Run.open(run_dir)
    saved = run.manifest()["recipe"].get("export", {})
    formats = tuple(formats or saved.get("formats", FORMATS))
    int8 = saved.get("int8", True) if int8 is None else int8
    calibration = calibration or saved.get("calibration", DEFAULT_CALIBRATION)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; valid formats: {', '.join(FORMATS)}")
    if not run.members("gen"):
        raise UserError(f"{run.root} has no finished generation to export")
    # generations get every artifact; the teacher and the scratch baselines only fp32 ONNX,
    # so the report can place them on the same size axis
    plan = [(m, None) for m in run.members("gen")]
    extras = (["teacher"] if (run.teacher_dir / "model.pt").is_file() else []) + run.members("baseline")
    plan += [(m, {("onnx", "fp32")}) for m in extras]
    manifest = run.manifest()
    recipe = manifest["recipe"]
    splits = load_run_splits(manifest, run.root)
    x_check = splits.x_val[:256]
    if int8 and calibration > len(splits.x_train):
        if calibration != DEFAULT_CALIBRATION:  # the default means "up to": only a number someone chose is news
            on_event({"kind": "warning", "text": f"calibration {calibration}: the training set has "
                                                 f"{len(splits.x_train)} rows; int8 is calibrated on all of them"})
        calibration = len(splits.x_train)
    loaded = {}
    for member, _ in plan:  # every model read before anything is written: a bad one changes nothing
        _check_writable(run.root / member)
        loaded[member] = load_model(run.root / member / "model.pt")
    results = {}
    for member, only in plan:
        model, spec = loaded[member]
        ctx = _Member(run, member, model, spec.input_shape,
                      quantize.calibration_set(splits.x_train, calibration, recipe["train"]["seed"]))

        @torch.inference_mode()
        def torch_predict(x: np.ndarray) -> np.ndarray:
            return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()

        records: dict[str, dict] = {}
        for step in _steps(ctx):
            name = f"{step.fmt}-{step.precision}"
            intermediate = (step.fmt, step.precision) == ("onnx", "fp32") and "openvino" in formats
            if (step.fmt not in formats and not intermediate) or (step.precision == "int8" and not int8):
                continue
            if only is not None and (step.fmt, step.precision) not in only:
                continue
            on_event({"kind": "export", "member": member, "artifact": name})
            if step.needs and not records.get("-".join(step.needs), {}).get("built"):
                records[name] = {"artifact": name, "built": False, "passed": False,
                                 "error": f"not built: {'-'.join(step.needs)} is missing or failed"}
                continue
            path = run.artifact_path(member, step.fmt, step.precision)
            try:
                info = step.build()
                record = verify(path, step.fmt, step.precision, torch_predict, x_check, splits.x_test,
                                splits.y_test, splits.classes, threads=host.cores())
            except Exception as e:  # reported per artifact; the others go on
                records[name] = {"artifact": name, "built": False, "passed": False,
                                 "error": f"{type(e).__name__}: {reason(e, 300)}"}
                continue
            records[name] = {**record, "built": True, "file": str(path.relative_to(run.root)),
                             "bytes": artifact_bytes(path), "weight_bytes": artifact_weight_bytes(path), "sha256": artifact_sha256(path), **info}
        kept = _earlier_records(run, manifest, member, records)
        order = [f"{s.fmt}-{s.precision}" for s in _steps(ctx)]
        records = dict(sorted({**kept, **records}.items(), key=lambda kv: order.index(kv[0])))
        write_json(run.validation_path(member), records)
        run.update_manifest(lambda m: m["members"][member].update(artifacts=_summary(records)))
        results[member] = {name: {**r, "kept": True} if name in kept else r for name, r in records.items()}
    # the recipe says how to rebuild everything listed: this export's settings, widened by what it kept
    kept_names = {name for records in results.values() for name, r in records.items() if r.get("kept")}
    formats = [f for f in FORMATS if f in formats or any(n.startswith(f + "-") for n in kept_names)]
    int8_kept = any(n.endswith("-int8") for n in kept_names)
    run.update_manifest(lambda m: m["recipe"].setdefault("export", {}).update(
        formats=formats, int8=int8 or int8_kept, calibration=calibration if int8 else saved.get("calibration", calibration)))
    return results


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
        if name in rebuilt or not isinstance(r, dict) or not r.get("passed") or "file" not in r:
            continue  # a failed artifact is not carried over: a later export may rebuild it
        if r.get("sha256") and run.artifact_change(r) is None:
            kept[name] = r
    return kept


def _summary(records: dict[str, dict]) -> dict[str, dict]:
    keep = ("built", "passed", "problems", "file", "bytes", "weight_bytes", "sha256", "accuracy", "agreement",
            "max_abs_diff", "error")
    return {name: {k: r[k] for k in keep if k in r} for name, r in records.items()}


def _check_writable(directory: Path) -> None:
    import os

    if not os.access(directory, os.W_OK):
        raise UserError(f"cannot write exports into {directory}: permission denied")


def artifact_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in artifact_files(path))


def artifact_weight_bytes(path: Path) -> int:
    """Bytes of stored constants (weights, scales) without the graph's description: what
    quantization shrinks. For tiny models the graph text outweighs them, so an int8 file can
    be larger than its fp32 source while its weights are smaller (up to 4x: biases and
    per-channel scales stay 32-bit)."""
    return path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else weight_bytes(path)


def artifact_sha256(path: Path) -> str:
    return files_sha256(artifact_files(path))
