"""ONNX -> OpenVINO IR (.xml + .bin).

`openvino.save_model` compresses weights to fp16 by default; we choose explicitly:
the fp32 artifact keeps fp32 weights, and fp16 is its own artifact.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgekd.offline import disable_telemetry

_COUNTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*_\d+")


def onnx_to_ir(onnx_path: Path, xml_path: Path, fp16: bool) -> dict:
    disable_telemetry()
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    save_ir(model, xml_path, fp16)
    return {"converter": f"openvino.convert_model {ov.get_version()}", "weights": "fp16" if fp16 else "fp32",
            "compress_to_fp16": fp16}


def save_ir(model, xml_path: Path, fp16: bool) -> None:
    """Write .xml and .bin under temporary names, then rename both (bin first: the xml names it)."""
    import openvino as ov

    _stable_names(model)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_xml = xml_path.with_name(f".{xml_path.stem}.{os.getpid()}.tmp.xml")
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=fp16)
        # the .xml refers to its .bin by the same stem, so rename the pair together
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    finally:
        tmp_xml.unlink(missing_ok=True)
        tmp_xml.with_suffix(".bin").unlink(missing_ok=True)


def _stable_names(model) -> None:
    """Rename ops that carry OpenVINO's per-process counter ("Reshape_5486", also copied onto the
    constants folded from them) by their position instead, so the same model writes the same
    bytes whatever the process converted before: bench rows record the sha256 of what they
    timed, and a counter-named re-export would make them look stale. Inputs and outputs keep
    their names."""
    ops = list(model.get_ordered_ops())
    renamed = [op.get_type_name() not in ("Parameter", "Result") and bool(_COUNTER_NAME.fullmatch(op.get_friendly_name()))
               for op in ops]
    taken = {op.get_friendly_name() for op, r in zip(ops, renamed) if not r}  # names that stay
    for i, op in enumerate(ops):
        if renamed[i]:
            name = f"{op.get_type_name()}_{i}"
            while name in taken:
                name += "_"
            taken.add(name)
            op.set_friendly_name(name)
