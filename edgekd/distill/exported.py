"""torch.export (.pt2) teachers: an ExportedProgram saved with torch.export.save, run eagerly.

torch.export.load is not a weights-only loader: a weight or constant stored with
`use_pickle`, an opaque or custom object, and sample inputs that fail a weights-only load are
all unpickled in full (torch 2.13, pt2_archive/_package.py and _export/serde/serialize.py;
its docstring says "never load data from an untrusted source"). A program saved from a plain
module holds none of these: its weights are raw bytes described by JSON. So the archive
is read first, and refused when loading it would unpickle anything but tensors.

A program exported without dynamic shapes has a fixed batch; batches are then cut into
chunks of that size, the last one padded with zeros.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import UserError, reason

SUFFIX = ".pt2"


class FixedBatch(nn.Module):
    """Runs a program exported for batch `batch` on any batch: (N, ...) in chunks -> (N, classes)."""

    def __init__(self, program: nn.Module, batch: int):
        super().__init__()
        self.program, self.batch = program, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, len(x), self.batch):
            chunk = x[i:i + self.batch]                                  # (<= batch, ...)
            pad = chunk.new_zeros(self.batch - len(chunk), *chunk.shape[1:])
            outs.append(self.program(torch.cat([chunk, pad]))[:len(chunk)])
        return torch.cat(outs) if outs else self.program(x.new_zeros(self.batch, *x.shape[1:]))[:0]

    def train(self, mode: bool = True) -> "FixedBatch":
        self.training = mode  # an exported program refuses train()/eval(): it runs as it was exported
        return self


def load_exported(path: Path) -> tuple[nn.Module, dict]:
    """(module mapping (N, ...) to logits, what the manifest records), or one sentence why not."""
    _refuse_pickles(path)
    try:
        program = torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001  (a damaged archive fails anywhere in deserialization)
        raise UserError(f"{path} is not a loadable torch.export program ({reason(e, 120)})") from None
    inputs = [n.meta.get("val") for n in program.graph.nodes
              if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor) or inputs[0].ndim < 2:
        raise UserError(f"{path} takes {len(inputs)} inputs; a teacher takes exactly one (batch, ...) tensor")
    shape = inputs[0].shape
    info = {"runtime": f"torch.export {torch.__version__}",
            "input_shape": [d if isinstance(d, int) else None for d in shape[1:]]}
    module = program.module()
    if isinstance(shape[0], int):  # exported without a dynamic batch axis
        info["batch"] = shape[0]
        module = FixedBatch(module, shape[0])
    return module, info


def _refuse_pickles(path: Path) -> None:
    """Refuse an archive torch.export.load would unpickle more than tensors from."""
    from torch.export.pt2_archive.constants import TENSOR_CONSTANT_FILENAME_PREFIX

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            configs = [n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))]
            if len(configs) < 2:
                raise UserError(f"{path} is not a torch.export archive of this torch's format (save it with "
                                f"torch.export.save from torch {torch.__version__.split('+')[0]})")
            for name in configs:
                for entry in json.loads(z.read(name))["config"].values():
                    if entry["use_pickle"] or ("constants" in name and not entry["path_name"].startswith(
                            TENSOR_CONSTANT_FILENAME_PREFIX)):
                        raise UserError(f"{path} stores pickled objects, not plain tensors; refusing to load it")
            for name in (n for n in names if "/data/sample_inputs/" in n):
                torch.load(io.BytesIO(z.read(name)), weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path} stores pickled objects, not plain tensors; refusing to load it") from None
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (not a zip, truncated, bad JSON, missing keys)
        raise UserError(f"{path} is corrupt or not a torch.export archive ({reason(e, 120)})") from None
