"""The runtime table: every kind of artifact edgekd builds, and the runtime that runs it.

A kind is a (format, precision) pair, named "<format>-<precision>" ("onnx-int8"). Its entry
says where its file lives inside a member's directory, which kind it is built from, the
function that builds it, and (through its format) the runtime that opens it for inference,
the plot marker and the label; its precision holds the verification tolerance, whether it
quantizes, the plot colour and the predictor's speed-up bound. export, verify, bench,
targets, report and the CLI read these tables and spell no format or precision themselves.

Adding a runtime is one module in this package (`open_model`, `output_names`, its
exporters; stdlib-only at import time, since the bench copies it to devices beside the
runner) and its entries below.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from edgekd.runtimes import ncnn, onnx, openvino, torch_eager

INPUT, OUTPUT = "input", "logits"  # the names every artifact's graph gives its input and output


@dataclass
class ExportContext:
    """What a kind's `build` gets: the student, its input shape, calibration rows, the main file
    of the kind it is built from (`source`, None when built from the torch model) and its own."""

    model: Any
    input_shape: tuple[int, ...]
    calibration: Any
    source: Path | None
    out: Path


@dataclass(frozen=True)
class Precision:
    name: str
    atol: float            # |artifact - torch| <= atol + rtol * max|torch| over every logit
    rtol: float
    min_agreement: float   # top-1 agreement with the torch student
    quantizes: bool        # built from calibration data (export.int8 switches these on and off)
    color: str             # plot colour
    max_speedup: float     # how far its arithmetic can beat the fp32 compute floor (predictor)
    weight_bytes: int = 4  # bytes a weight takes on disk (edgekd.diskspace's estimate)


@dataclass(frozen=True)
class Runtime:
    name: str
    module: ModuleType     # open_model(path, threads, precision) -> (predict, settings); output_names(path)
    label: str
    imports: tuple[str, ...]   # what the runner imports first (its memory is not the model's)
    packages: tuple[str, ...]  # distributions whose versions a measurement records
    converters: tuple[str, ...] = ()  # what its exporters import beyond the runtime
    host_only: bool = False    # needs edgekd itself: never run on a device
    extra: str | None = None   # the pip extra that installs it, when the default install lacks it

    @property
    def opener(self) -> Path:
        """The module's file: the runner loads it by path, here and on a device."""
        return Path(self.module.__file__)

    def installed(self, converters: bool = False) -> bool:
        names = self.imports + (self.converters if converters else ())
        return all(importlib.util.find_spec(name) is not None for name in names)

    def missing(self) -> str:
        how = f"pip install 'edgekd[{self.extra}]'" if self.extra else f"pip install {' '.join(self.packages)}"
        return f"{self.label} is not installed ({how})"


@dataclass(frozen=True)
class Format:
    name: str
    runtime: Runtime
    label: str
    marker: str            # plot marker
    exported: bool = True  # False: the eager torch model, the reference every artifact is checked against


@dataclass(frozen=True)
class Kind:
    format: Format
    precision: Precision
    file: str | None                          # inside the member's directory; None: the member's own model
    companions: tuple[str, ...] = ()          # suffixes of files that travel with it (an IR's .bin)
    needs: str | None = None                  # the kind it is built from; None: the torch model
    build: Callable[[Any], dict] | None = None  # (ExportContext) -> what the exporter recorded

    @property
    def name(self) -> str:
        return f"{self.format.name}-{self.precision.name}"

    @property
    def runtime(self) -> Runtime:
        return self.format.runtime

    def files(self, path: Path) -> list[Path]:
        """The artifact's files on disk, `path` (its main file) first."""
        return [path, *(path.with_suffix(s) for s in self.companions)]


PRECISIONS = {p.name: p for p in (
    Precision("fp32", 1e-4, 1e-4, 0.999, quantizes=False, color="#1f77b4", max_speedup=1.0),
    Precision("fp16", 2e-2, 1e-2, 0.99, quantizes=False, color="#2ca02c", max_speedup=2.0,
              weight_bytes=2),
    # int8 logits move by design: held to a relative bound and to top-1 agreement with torch
    Precision("int8", 0.0, 0.25, 0.95, quantizes=True, color="#ff7f0e", max_speedup=4.0,
              weight_bytes=1),
)}
FP32 = PRECISIONS["fp32"]

RUNTIMES = {r.name: r for r in (
    Runtime("onnxruntime", onnx, "ONNX Runtime", ("onnxruntime",), ("onnx", "onnxruntime")),
    Runtime("openvino", openvino, "OpenVINO", ("openvino",), ("openvino", "nncf"), converters=("nncf",)),
    Runtime("ncnn", ncnn, "ncnn", ("ncnn",), ("ncnn", "pnnx"), converters=("pnnx",), extra="ncnn"),
    Runtime("torch", torch_eager, "PyTorch (eager)", ("torch",), ("torch",), host_only=True),
)}

FORMATS = {f.name: f for f in (
    Format("onnx", RUNTIMES["onnxruntime"], "ONNX", "o"),
    Format("openvino", RUNTIMES["openvino"], "OpenVINO IR", "s"),
    Format("ncnn", RUNTIMES["ncnn"], "ncnn", "D"),
    Format("torch", RUNTIMES["torch"], "PyTorch", "^", exported=False),
)}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.exported)
DEFAULT_FORMATS = ("onnx", "openvino")  # ncnn is opt-in: its converter is an optional extra

_f, _p = FORMATS, PRECISIONS
# in build order: a kind comes after the kind it needs
KINDS = {k.name: k for k in (
    Kind(_f["torch"], FP32, None),
    Kind(_f["onnx"], FP32, "model.onnx", build=onnx.export_fp32),
    Kind(_f["onnx"], _p["int8"], "model.int8.onnx", needs="onnx-fp32", build=onnx.quantize_int8),
    Kind(_f["openvino"], FP32, "openvino/model.xml", (".bin",), needs="onnx-fp32", build=openvino.convert_fp32),
    Kind(_f["openvino"], _p["fp16"], "openvino/model.fp16.xml", (".bin",), needs="onnx-fp32",
         build=openvino.convert_fp16),
    Kind(_f["openvino"], _p["int8"], "openvino/model.int8.xml", (".bin",), needs="openvino-fp32",
         build=openvino.quantize_int8),
    # ncnn int8 needs ncnn2table and ncnn2int8, which no package registry ships
    Kind(_f["ncnn"], FP32, "ncnn/model.param", (".bin",), build=ncnn.export_fp32),
    Kind(_f["ncnn"], _p["fp16"], "ncnn/model.fp16.param", (".bin",), build=ncnn.export_fp16),
)}
REFERENCE = KINDS["torch-fp32"]   # the eager model: measured beside the artifacts, checked against by each
SIZE_KIND = KINDS["onnx-fp32"]    # the teacher's and the scratch controls' one artifact: the common size axis
GRAPH_KIND = KINDS["onnx-fp32"]   # the graph the predictor reads work and weights from


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown artifact kind {name!r}; known: {', '.join(KINDS)}") from None


def exported_kinds(formats: tuple[str, ...], int8: bool) -> list[Kind]:
    """The kinds an export builds for these formats, with what they are built from, in build order."""
    wanted = {k.name for k in KINDS.values() if k.format.exported and k.format.name in formats
              and (int8 or not k.precision.quantizes)}
    for k in reversed(list(KINDS.values())):  # what a wanted kind needs is built too
        if k.name in wanted and k.needs:
            wanted.add(k.needs)
    return [k for k in KINDS.values() if k.name in wanted]


def find(format_name: str, precision: str = FP32.name) -> Kind:
    """The kind of a format at a precision (fp32 unless named)."""
    return kind(f"{format_name}-{precision}")


def order(name: str) -> int:
    """Position of an artifact kind in tables and plots: the table's order, unknown names last."""
    names = list(KINDS)
    return names.index(name) if name in names else len(names)


def describe(formats: tuple[str, ...], int8: bool) -> str:
    """"ONNX (fp32, int8) and OpenVINO IR (fp32, fp16, int8)": what an export will build."""
    kinds = exported_kinds(formats, int8)
    parts = [f"{FORMATS[f].label} ({', '.join(k.precision.name for k in kinds if k.format.name == f)})"
             for f in formats if f in FORMATS]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def versions() -> list[str]:
    """The distributions of every runtime, for host.versions."""
    return [p for r in RUNTIMES.values() for p in r.packages]
