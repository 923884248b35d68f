"""`@register("name")` families and the ArchSpec that rebuilds any model from JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from edgekd.errors import UserError, reason

_FAMILIES: dict[str, Callable[["ArchSpec"], nn.Module]] = {}
Option = int | float | str
_OPTIONS: dict[str, dict[str, Option]] = {}  # family -> its options and their defaults


def register(name: str, options: dict[str, Option] | None = None):
    """`@register("name")` on a builder `fn(spec: ArchSpec) -> nn.Module` adds a model family;
    a `--plugin` file reaches it as `edgekd.models.register_family`. `options` are the family's
    own knobs beyond width and depth, with their defaults (their types: int, float or str);
    the builder reads them with `spec.option(key)`."""
    def deco(fn):
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} registered twice")
        _FAMILIES[name] = fn
        _OPTIONS[name] = dict(options or {})
        return fn
    return deco


def families() -> list[str]:
    return sorted(_FAMILIES)


Stat = float | tuple[float, ...]  # an input statistic: one value, or one per column of (N, F) inputs


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild a model; saved as JSON beside its weights."""

    family: str
    width: int
    depth: int
    input_shape: tuple[int, ...]
    classes: int
    # input standardization baked into the model, so exported artifacts take raw inputs,
    # exactly as the data provides them; one value, or one per feature of (N, F) tables
    mean: Stat = 0.0
    std: Stat = 1.0
    options: tuple[tuple[str, Option], ...] = ()  # sorted (key, value) pairs that differ from the family's defaults

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        d.update({k: list(v) for k, v in (("mean", self.mean), ("std", self.std)) if isinstance(v, tuple)})
        d["options"] = dict(self.options)
        if not self.options:
            del d["options"]  # specs written before options existed read back identical
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        try:
            return cls(family=str(d["family"]), width=int(d["width"]), depth=int(d["depth"]),
                       input_shape=tuple(int(s) for s in d["input_shape"]), classes=int(d["classes"]),
                       mean=_stat(d.get("mean", 0.0)), std=_stat(d.get("std", 1.0)),
                       options=family_options(str(d["family"]), _option_table(d.get("options", {}))))
        except KeyError as e:
            raise UserError(f"invalid architecture spec: it has no {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise UserError(f"invalid architecture spec ({reason(e)})") from None

    def label(self) -> str:
        """FAMILY:WIDTHxDEPTH[/KEY=VALUE...], the text `parse_arch` reads back."""
        return f"{self.family}:{self.width}x{self.depth}" + "".join(f"/{k}={v}" for k, v in self.options)

    def option(self, key: str) -> Option:
        return dict(self.options).get(key, _OPTIONS.get(self.family, {}).get(key))


def _stat(value: Any) -> Stat:
    return tuple(float(v) for v in value) if isinstance(value, list) else float(value)


def _option_table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"options must be a table, not {type(value).__name__}")
    return value


def split_arch(text: str) -> tuple[str, str, tuple[tuple[str, Option], ...]]:
    """"mobilenetv2:16x4/expansion=4" -> ("mobilenetv2", "16x4", (("expansion", 4),)): the family,
    its size text (may be "") and its options, checked against the family's own."""
    head, *pairs = text.strip().split("/")
    family, _, size = head.partition(":")
    raw = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise UserError(f"architecture {text!r}: options are written /KEY=VALUE, e.g. mobilenetv2:16x4/expansion=4")
        raw[key.strip()] = value.strip()
    return family.strip(), size.strip(), family_options(family.strip(), raw)


def family_options(family: str, raw: dict[str, Any]) -> tuple[tuple[str, Option], ...]:
    """`raw` options of `family` as sorted (key, value) pairs in the types of the family's
    defaults, leaving out those equal to a default; an unknown key or a value of the wrong type
    is one sentence."""
    if not raw:
        return ()
    if family not in _FAMILIES:
        raise UserError(f"unknown model family {family!r}; known: {', '.join(families())}")
    known = _OPTIONS[family]
    out = {}
    for key, value in raw.items():
        if key not in known:
            takes = f"its options are {', '.join(sorted(known))}" if known else "it has none"
            raise UserError(f"model family {family!r} has no option {key!r}; {takes}")
        kind = type(known[key])
        try:
            typed = kind(value) if not isinstance(value, bool) else None
            if typed is None or (kind is int and str(typed) != str(value).strip()):
                raise ValueError
        except (TypeError, ValueError):
            raise UserError(f"{family} option {key}={value!r}: expected {kind.__name__}") from None
        if typed != known[key]:
            out[key] = typed
    return tuple(sorted(out.items()))


MAX_PARAMS = 500_000_000  # 2 GB of fp32 weights: far beyond an edge model, and beyond training here


def build(spec: ArchSpec) -> nn.Module:
    if spec.family not in _FAMILIES:
        raise UserError(f"unknown model family {spec.family!r}; known: {', '.join(families())}")
    if spec.width < 1 or spec.depth < 1:
        raise UserError(f"model {spec.label()}: width and depth must be at least 1")
    params = _meta_params(spec)
    if params is not None and params > MAX_PARAMS:
        raise UserError(f"model {spec.label()} would have {params:,} parameters; edgekd builds at most "
                        f"{MAX_PARAMS:,} (shrink its width or depth)")
    model = _FAMILIES[spec.family](spec)
    _check_built(spec, model)
    return model


def _check_built(spec: ArchSpec, model: object) -> None:
    """A family (a plugin's above all) must give a module whose forward maps (N, *input_shape)
    to (N, classes). A batch of 0 checks the shapes without computing anything; a model that
    cannot take an empty batch (an FFT) is checked on a batch of 2."""
    if not isinstance(model, nn.Module):
        raise UserError(f"model family {spec.family!r} returned a {type(model).__name__}, not a torch nn.Module")
    was_training = model.training
    model.eval()  # the check must not move batch-norm statistics
    try:
        with torch.inference_mode():
            try:
                batch, out = 0, model(torch.zeros(0, *spec.input_shape))
            except Exception:  # noqa: BLE001
                batch, out = 2, model(torch.zeros(2, *spec.input_shape))
    except Exception as e:  # noqa: BLE001  (a plugin's forward may raise anything: one sentence)
        raise UserError(f"model family {spec.family!r} ({spec.label()}) fails on inputs of shape "
                        f"(N, {', '.join(map(str, spec.input_shape))}): {reason(e)}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, spec.classes):
        got = f"a {type(out).__name__}"
        if isinstance(out, torch.Tensor):
            dims = ["N" if i == 0 and d == batch else str(d) for i, d in enumerate(out.shape)]
            got = f"shape ({', '.join(dims)})"
        raise UserError(f"model family {spec.family!r} ({spec.label()}) returns {got} for a batch of N inputs; "
                        f"forward must return logits of shape (N, {spec.classes})")


def _meta_params(spec: ArchSpec) -> int | None:
    """The parameter count, from a build on the meta device (shapes only, no memory), or None
    when a family cannot be built there (a plugin that reads its tensors' values)."""
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in _FAMILIES[spec.family](spec).parameters())
    except Exception:  # noqa: BLE001  (the real build below reports its own errors)
        return None


class Standardize(nn.Module):
    """(x - mean) / std with fixed buffers: part of the exported graph."""

    def __init__(self, mean: Stat, std: Stat):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("inv_std", (1.0 / torch.tensor(std, dtype=torch.float64)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std
