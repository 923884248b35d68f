"""Teachers: anything that maps a batch of inputs to logits.

A torch module (an edgekd model, a TorchScript file or a torch.export .pt2 program) or an
ONNX file run by ONNX Runtime, so a model from any framework can teach. Soft targets are computed here in
batches under inference mode; the chain caches them when inputs do not change.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.data.rows import chunks, on_disk
from edgekd.distill import exported
from edgekd.distill.compute import module_device
from edgekd.errors import UserError, reason
from edgekd.models import ArchSpec, load_model
from edgekd.runs import TEACHER_FILES, Run, model_files


@dataclass
class Teacher:
    kind: str                               # "edgekd" | "torchscript" | "torch-export" | "onnx"
    source: str                             # where it came from, for the manifest
    module: nn.Module | None = None         # torch teachers (feature methods hook into it)
    spec: ArchSpec | None = None            # edgekd teachers only
    session: Any = None                     # onnxruntime.InferenceSession
    info: dict = field(default_factory=dict)
    members: list["Teacher"] = field(default_factory=list)   # an ensemble's teachers
    combine: str = "mean-logits"

    @classmethod
    def ensemble(cls, members: list["Teacher"], combine: str, primary: bool) -> "Teacher":
        """Soft targets averaged in logit space, or in probability space (returned as log-probabilities)."""
        first = members[0]
        return cls("ensemble", "teacher", module=first.module if primary else None, spec=first.spec,
                   members=members, combine=combine,
                   info={"combine": combine, "primary": first.source if primary else None,
                         "members": [m.describe() for m in members]})
    @torch.inference_mode()
    def logits(self, x: np.ndarray | torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        if on_disk(x):  # read a chunk at a time: only the logits stay
            return torch.cat([self.forward(c, batch_size) for c in chunks(x, batch_size)])
        return self.forward(x, batch_size)

    def forward(self, x: np.ndarray | torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Logits outside inference mode: the trainer calls this per batch under no_grad, so the
        features a hooked (primary) teacher module records can feed the student's loss. The
        batch goes through whole (batch_size None): hooks keep one call's features."""
        x = torch.as_tensor(x, dtype=torch.float32)
        home = x.device  # logits come back where the inputs were
        batch_size = batch_size or max(1, len(x))
        if self.members:  # every member runs: the primary one's hooks fire, the soft targets are the ensemble's
            stacked = torch.stack([m.forward(x, batch_size) for m in self.members])  # (M, N, C)
            if self.combine == "mean-probs":
                return torch.logsumexp(torch.log_softmax(stacked, -1), 0) - torch.log(torch.tensor(len(self.members)))
            return stacked.mean(0)
        outs = []
        batch_size = self.info.get("batch", batch_size)  # an ONNX file exported with batch 1 fixed
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            if self.session is not None:
                name = self.session.get_inputs()[0].name
                outs.append(torch.from_numpy(np.asarray(self.session.run(None, {name: chunk.cpu().numpy()})[0])))
            else:
                outs.append(self.module(chunk.to(module_device(self.module))))
        return torch.cat([o.to(home) for o in outs]).float()

    def to(self, device: torch.device) -> "Teacher":
        """Move a torch teacher (every torch member of an ensemble) to `device`; ONNX runs where it runs."""
        for t in self.members or [self]:  # a primary ensemble's module is its first member's
            if t.module is not None:
                t.module.to(device)
        return self

    def params(self) -> int | None:
        """Parameter count: a torch module's, an ONNX file's weight tensors', an ensemble's sum."""
        if self.members:
            counts = [m.params() for m in self.members]
            return None if None in counts else sum(counts)
        if self.module is not None:
            return sum(p.numel() for p in self.module.parameters())
        return _onnx_params(Path(self.source)) if self.kind == "onnx" else None

    def describe(self) -> dict:
        d = {"kind": self.kind, "source": self.source, **self.info}
        if self.spec is not None:
            d["arch"] = self.spec.to_dict()
        return d


def check_against(teacher: Teacher, x_sample: np.ndarray, classes: int) -> None:
    """Refuse a teacher that cannot take the data's inputs or predicts another class count."""
    shape = tuple(x_sample.shape[1:])
    if teacher.spec is not None and tuple(teacher.spec.input_shape) != shape:  # global pooling takes any length
        raise UserError(f"teacher {teacher.source} was trained on inputs of shape {tuple(teacher.spec.input_shape)}, "
                        f"the data's are {shape}")
    fixed = teacher.info.get("input_shape")  # a .pt2 program's sizes per sample (None: a dynamic axis)
    if fixed is not None and (len(fixed) != len(shape) or any(f not in (None, d) for f, d in zip(fixed, shape))):
        sizes = ", ".join("*" if f is None else str(f) for f in fixed)
        raise UserError(f"teacher {teacher.source} was exported for inputs of shape (N, {sizes}), "
                        f"the data's are (N, {', '.join(map(str, shape))})")
    try:
        out = teacher.logits(x_sample[:4])
    except Exception as e:  # any runtime's shape error: say it in one sentence
        raise UserError(f"teacher {teacher.source} does not accept inputs of shape "
                        f"{tuple(x_sample.shape[1:])} ({reason(e)})") from None
    if out.ndim != 2 or out.shape[0] != min(4, len(x_sample)):
        raise UserError(f"teacher {teacher.source} returns shape {tuple(out.shape)}, expected (batch, classes)")
    if out.shape[1] != classes:
        raise UserError(f"teacher {teacher.source} predicts {out.shape[1]} classes but the data has {classes}")
    if not torch.isfinite(out).all():
        raise UserError(f"teacher {teacher.source} produces NaN or infinite logits")


def load_teacher(spec: str) -> Teacher:
    """A run dir, a teacher/gen dir, an edgekd model.pt, a TorchScript file, a .pt2 or an .onnx file."""
    path = Path(spec)
    if not path.exists():
        raise UserError(f"teacher {spec} does not exist")
    if path.is_dir():
        layout = Run(path)  # a run's layout, or a member directory's (then it has no teacher/)
        found = model_files(layout.teacher_dir) + model_files(path)
        if found:
            return load_teacher(str(found[0]))
        members = layout.teacher_member_dirs()
        if members:  # a run taught by an ensemble keeps each member apart
            raise UserError(f"{spec} was taught by an ensemble; give each member: "
                            + " ".join(f"--teacher {m}" for m in members))
        gens = layout.saved_models("gen")
        hint = f"; its generations can teach (--teacher {gens[0].parent})" if gens else ""
        raise UserError(f"{spec} holds no teacher (no {' or '.join(TEACHER_FILES.values())} in it or its "
                        f"teacher/){hint}")
    if path.suffix.lower() == ".onnx":
        return _onnx_teacher(path)
    if path.suffix.lower() == exported.SUFFIX:
        module, info = exported.load_exported(path)
        return Teacher("torch-export", str(path), module=module, info=info)
    if _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:
            raise UserError(f"{path} is not a loadable TorchScript file ({reason(e, 120)})") from None
        return Teacher("torchscript", str(path), module=module)
    module, arch = load_model(path)
    return Teacher("edgekd", str(path), module=module, spec=arch)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 2)[1:2] == ["code"] for n in z.namelist())
    except (zipfile.BadZipFile, OSError, IndexError):
        return False


def _onnx_teacher(path: Path) -> Teacher:
    import onnxruntime as ort

    onnx_data_files(path)  # refuses a weights location outside the model's folder, as ORT would, in our words
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise UserError(f"{path} is not a model ONNX Runtime can load ({reason(e)})") from None
    if len(session.get_inputs()) != 1:
        raise UserError(f"{path} has {len(session.get_inputs())} inputs; a teacher takes exactly one")
    outputs = session.get_outputs()
    if len(outputs) != 1:
        raise UserError(f"{path} has {len(outputs)} outputs ({', '.join(o.name for o in outputs)}); "
                        "a teacher returns exactly one, its logits")
    batch = session.get_inputs()[0].shape[0]  # an int when fixed; a name or None when dynamic
    if isinstance(batch, int) and batch != 1:
        raise UserError(f"{path} was exported with a fixed batch of {batch}; export it with a dynamic batch axis")
    info = {"runtime": f"onnxruntime {ort.__version__}", **({"batch": 1} if batch == 1 else {})}
    return Teacher("onnx", str(path), session=session, info=info)


def _onnx_params(path: Path) -> int | None:
    """Elements of the weight initializers; integer ones are shapes and indices, not weights."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:
        return None
    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    count = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type not in integer)
    return count or None  # weights held in Constant nodes: unknown rather than zero


def data_files(teacher: Teacher) -> list[Path]:
    """The files beside a teacher's own that hold its weights, relative to its folder: an ONNX
    teacher's external data; none for torch teachers."""
    return onnx_data_files(Path(teacher.source)) if teacher.kind == "onnx" else []


def onnx_data_files(path: Path) -> list[Path]:
    """The files an ONNX model keeps its weights in (onnx.save_model(..., save_as_external_data=True)),
    relative to its folder. A location outside that folder (an absolute path, `../secret`, or a
    link out) is refused: the model would read, and the run would copy, a file it does not own."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: ONNX Runtime says so next
        return []
    folder, found = path.resolve().parent, []
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder) or target == folder:
            raise UserError(f"{path} keeps tensor {tensor.name!r} in {location!r}, outside its folder {folder}; "
                            "external data must be a file beside the model")
        if Path(location) not in found:
            found.append(Path(location))
    return found


def _tensors(graph) -> Iterator:
    """Every tensor in an ONNX graph: initializers, Constant attributes and the same in subgraphs (If, Loop)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(sub)
