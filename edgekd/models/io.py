"""Save and load models as plain tensors + a JSON-able arch spec, never as pickled objects."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import UserError, reason
from edgekd.models.registry import ArchSpec, build

FORMAT = "edgekd-model-1"


def save_model(model: nn.Module, spec: ArchSpec, path: Path) -> None:
    from edgekd.diskspace import tensor_bytes
    from edgekd.runs import atomic_path

    payload = {"format": FORMAT, "arch": spec.to_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    with atomic_path(path, tensor_bytes(payload)) as tmp:
        torch.save(payload, tmp)


def load_payload(path: Path) -> dict:
    """torch.load with weights_only=True: a pickle carrying code is refused, not run."""
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise UserError(f"model file {path} is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch words it "Unsupported global" for allowed modules, "unsupported GLOBAL" for blocked
        # ones (os, subprocess): either way a pickle of code; anything else is not a pickle at all
        if "unsupported global" not in str(e).lower():
            raise UserError(f"{path} is corrupt or not a torch checkpoint (its pickle data cannot be read)") from None
        raise UserError(f"{path} is not plain weights (it pickles code or objects); refusing to load it") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise UserError(f"{path} is corrupt or not a torch checkpoint ({reason(e, 120)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an edgekd model file (expected format {FORMAT})")
    if not isinstance(payload.get("arch"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise UserError(f"{path} is an incomplete edgekd model file (it needs both 'arch' and 'state_dict')")
    return payload


def load_model(path: Path) -> tuple[nn.Module, ArchSpec]:
    payload = load_payload(path)
    try:
        spec = ArchSpec.from_dict(payload["arch"])
        model = build(spec)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError) as e:
        raise UserError(f"{path}: weights do not match its architecture {spec.label()} ({reason(e, 120)})") from None
    model.eval()
    return model, spec
