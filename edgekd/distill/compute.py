"""Where a run trains and in what arithmetic: `--device` and `--precision`.

Training (student, teacher soft targets and online hooks, scratch controls, validation) runs
on the chosen device; everything a run writes is moved to the CPU first, so a checkpoint or
model of a GPU run loads on a machine without one, and export always starts from a CPU copy.
Mixed precision is autocast over the forward pass and the loss (softmax, log-softmax, KL and
cross-entropy stay fp32 under it); fp16 also needs a gradient scaler, since its gradients
underflow where bf16's do not.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch

from edgekd.errors import UserError
from edgekd.recipe import TRAIN_PRECISIONS

FP32, BF16, FP16 = TRAIN_PRECISIONS
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps"
PRECISIONS = {FP32: None, BF16: torch.bfloat16, FP16: torch.float16}
PRECISION_HELP = "auto | " + " | ".join(PRECISIONS)
# what each device type can run in autocast (fp16 on a CPU: emulated, slow, and no loss scaling there)
CAN_RUN = {"cpu": (FP32, BF16), "cuda": (BF16, FP16, FP32), "mps": (FP32, FP16)}


@dataclass(frozen=True)
class Compute:
    device: torch.device
    precision: str

    @property
    def dtype(self) -> torch.dtype | None:
        return PRECISIONS[self.precision]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16; a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == FP16)

    def record(self) -> dict:
        """What the manifest and the report say about it."""
        from edgekd.distill import distributed

        return {"device": str(self.device), "name": device_name(self.device), "precision": self.precision,
                "processes": distributed.world()}


CPU = Compute(torch.device("cpu"), FP32)


def resolve(device: str = "auto", precision: str = "auto") -> Compute:
    """The device and precision asked for, checked against this machine: one sentence when
    it has no such device or the device cannot run that precision."""
    where = _device(device)
    if precision == "auto":
        return Compute(where, _auto_precision(where))
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; expected {PRECISION_HELP}")
    if precision not in CAN_RUN[where.type]:
        raise UserError(f"--precision {precision} cannot run on {where.type}: it runs "
                        f"{', '.join(CAN_RUN[where.type])}")
    if where.type == "cuda" and precision == BF16 and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: {device_name(where)} has no bf16 arithmetic; use fp16 (with loss "
                        "scaling) or fp32")
    return Compute(where, precision)


def _device(text: str) -> torch.device:
    text = text.strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("--device mps: this machine has no Apple GPU (MPS) that torch can use; use --device cpu")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise UserError(f"unknown device {text!r}; expected {DEVICE_HELP}")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UserError(f"--device {text}: torch sees no CUDA GPU here (torch {torch.__version__}, {build}); "
                        "use --device cpu or auto")
    from edgekd.distill import distributed

    # under torchrun, plain "cuda" is each process's own GPU
    index = int(match.group(1)) if match.group(1) else distributed.local_rank() if distributed.launched() else 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                        f"numbered from 0")
    return torch.device("cuda", index)


def _auto_precision(device: torch.device) -> str:
    if device.type == "cuda":
        return BF16 if torch.cuda.is_bf16_supported() else FP32
    return FP32  # on a CPU, bf16 autocast trades accuracy for speed only on some chips: the user's call


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        from edgekd import host

        return host.cpu_model()
    return device.type


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's weights are (CPU for one without any)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
