"""Intermediate activations through forward hooks, shared by the feature-based methods.

No model's forward changes (torchdistill's idea): the student trained is exactly the
module exported. A `layers` entry is "path" (the same module path in student and
teacher) or "student_path:teacher_path"; no entries means each model's last feature
map (see `default_layer`).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from edgekd.errors import UserError


class Tap:
    """A forward hook that keeps the latest output of one module."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.value = output

    def __getstate__(self) -> dict:
        return {"value": None}  # torch.save of a hooked model never pickles an activation


def parse_layers(layers: Iterable[str] | str) -> list[tuple[str | None, str | None]]:
    """("a", "b:c") -> [("a", "a"), ("b", "c")]; () -> [(None, None)], the default layer."""
    if isinstance(layers, str):
        layers = layers.split(",")
    pairs = []
    for entry in layers:
        student, sep, teacher = entry.strip().partition(":")
        if student.strip():
            pairs.append((student.strip(), (teacher if sep else student).strip()))
    return pairs or [(None, None)]


def module_paths(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def resolve(model: nn.Module, path: str, role: str, method: str) -> nn.Module:
    modules = dict(model.named_modules())
    if path not in modules:
        raise UserError(f"method {method!r}: the {role} has no module {path!r}; its module paths: "
                        f"{', '.join(module_paths(model)) or 'none (it has no submodules)'}")
    return modules[path]


@torch.no_grad()
def probe(model: nn.Module, example: torch.Tensor, role: str) -> list[tuple[str, nn.Module, object]]:
    """(path, module, output) of every module on `example`, in the order they finish, in eval
    mode (so batch-norm statistics stay untouched); each module's mode is restored after."""
    record: list[tuple[str, nn.Module, object]] = []
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for name, module in model.named_modules():
            try:
                handles.append(module.register_forward_hook(
                    lambda m, i, o, name=name: record.append((name, m, o))))
            except RuntimeError as e:  # a TorchScript module takes no hooks
                raise UserError(f"cannot hook the layers of the {role} ({e}); "
                                "feature methods need an edgekd or plain torch model") from None
        model.eval()
        model(example)
    finally:
        for h in handles:
            h.remove()
        for module, mode in modes.items():
            module.training = mode
    return record


def default_layer(record: list[tuple[str, nn.Module, object]]) -> str:
    """The last feature map: the last module to finish with a (N, C, L) or (N, C, H, W) output
    (for ConvNet: `features`, the block before pooling), else the last (N, D) output before
    the logits (an MLP's last hidden layer), else the logits themselves ("").

    Only modules finishing after the first one with weights count, so the input's own
    layers (standardisation, flatten) are never chosen: they carry nothing to learn.
    """
    logits = record[-1][2]  # the root module finishes last
    first = next((k for k, (_, m, _) in enumerate(record) if next(m.parameters(recurse=False), None) is not None),
                 len(record))
    candidates = [(name, out) for name, _, out in record[first:]
                  if name and isinstance(out, torch.Tensor) and out is not logits]
    for ranks in ((3, 4), (2,)):
        found = [name for name, out in candidates if out.ndim in ranks]
        if found:
            return found[-1]
    return ""


class FeatureTaps:
    """Hooks on matched student/teacher modules; `pairs()` gives this step's activations.

    Holds no reference to either model (only the hooks and their handles), so neither
    the student's torch.save nor the optimizer ever sees the teacher.
    """

    def __init__(self, layers: Iterable[str] | str, method: str):
        self.layers = parse_layers(layers)
        self.method = method
        self.paths: list[tuple[str, str]] = []
        self.taps: list[tuple[Tap, Tap]] = []
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self, student: nn.Module, teacher: nn.Module | None,
               example: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Hook the layers; returns their (student, teacher) activations on `example`, for shapes."""
        if teacher is None:
            raise UserError(f"method {self.method!r} reads the teacher's layers and needs a torch teacher")
        for s, t in self.layers:  # a wrong path fails before any model runs
            if s is not None:
                resolve(student, s, "student", self.method)
                resolve(teacher, t, "teacher", self.method)
        self.detach()
        s_record, t_record = probe(student, example, "student"), probe(teacher, example, "teacher")
        paths = [(default_layer(s_record) if s is None else s, default_layer(t_record) if t is None else t)
                 for s, t in self.layers]
        found = [(_output(s_record, s, "student", self.method), _output(t_record, t, "teacher", self.method))
                 for s, t in paths]
        for s, t in paths:  # only once every layer is known good: a failure leaves no hook behind
            taps = (Tap(), Tap())
            self.handles += [resolve(student, s, "student", self.method).register_forward_hook(taps[0]),
                             resolve(teacher, t, "teacher", self.method).register_forward_hook(taps[1])]
            self.taps.append(taps)
        self.paths = paths
        return found

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This step's (student, teacher) activations; each is read once, so a stale one is never reused."""
        out = []
        for (s_path, t_path), (s, t) in zip(self.paths, self.taps):
            if s.value is None or t.value is None:
                who, path = ("student", s_path) if s.value is None else ("teacher", t_path)
                raise RuntimeError(f"method {self.method!r}: the {who} layer {path!r} did not run since "
                                   "the last loss; run teacher and student on every batch")
            out.append((s.value, t.value))
            s.value = t.value = None
        return out

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles, self.taps, self.paths = [], [], []


def _output(record: list[tuple[str, nn.Module, object]], path: str, role: str, method: str) -> torch.Tensor:
    outputs = {name: out for name, _, out in record}
    if path not in outputs:
        raise UserError(f"method {method!r}: the {role}'s module {path!r} does not run in its forward")
    out = outputs[path]
    if not isinstance(out, torch.Tensor) or out.ndim not in (2, 3, 4):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"method {method!r}: the {role}'s module {path!r} gives {shape}; feature methods read "
                        "(N, D), (N, C, L) or (N, C, H, W) tensors")
    return out
