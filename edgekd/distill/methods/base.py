"""What a distillation method is: a registered nn.Module that turns one batch into a scalar.

A method's own trainable parts (hint adapters, ...) are its submodules: the trainer
optimises them with the student, and export never sees them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from edgekd.errors import UserError


@dataclass
class Batch:
    """One training batch as the losses see it."""

    student: torch.Tensor                 # (B, C) student logits
    teacher: torch.Tensor | None          # (B, C) teacher logits; None when there is no teacher
    labels: torch.Tensor                  # (B,) class index, -1 where unlabeled (transfer set)


class Method(nn.Module):
    name: ClassVar[str]
    family: ClassVar[str]
    paper: ClassVar[str]
    summary: ClassVar[str]
    # True when the loss reads the teacher's intermediate activations (through hooks set in
    # `attach`): the teacher then runs on every batch instead of from cached logits, and it
    # must be a torch module.
    online_teacher: bool = False  # a class default; a method may set it per instance (rkd on features)
    # True for self-distillation: every generation keeps the teacher's architecture.
    same_architecture: ClassVar[bool] = False
    # True for online distillation: peers learn from each other, no pre-trained teacher.
    mutual: ClassVar[bool] = False
    # Options that a command-line flag of the same name sets, each with what it is for
    # (`--peers N` is dml's `peers`): the CLI then needs no method's name.
    flag_options: ClassVar[dict[str, str]] = {}
    # The term's weight when --weight does not name the method: the loss is
    # (1 - alpha) CE + alpha * sum_m weight_m * term_m, and alpha's default suits kd.
    default_weight: ClassVar[float] = 1.0

    def attach(self, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor) -> None:
        """Hook into the models before training; most methods need nothing.

        `example` is a small batch of real inputs: run it through both models to learn the
        shapes an adapter must map between, so adapters exist before the optimizer is built.
        """

    def detach(self) -> None:
        """Remove whatever `attach` hooked in (the student goes on to teach the next generation)."""

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in _REGISTRY:
        raise ValueError(f"distillation method {cls.name!r} registered twice")
    for option in cls.flag_options:  # one flag sets one method's option
        if any(option in other.flag_options for other in _REGISTRY.values()):
            raise ValueError(f"flag --{option} of method {cls.name!r} already belongs to {flag_owner(option).name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def flag_owner(option: str) -> type[Method]:
    """The method whose option `option` a command-line flag of that name sets."""
    owners = [cls for cls in _REGISTRY.values() if option in cls.flag_options]
    if not owners:
        raise KeyError(f"no distillation method takes the flag --{option}")
    return owners[0]


def names() -> list[str]:
    return sorted(_REGISTRY)


def options_of(cls: type[Method]) -> dict[str, object]:
    """Keyword-only constructor options and their defaults."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def create(name: str, options: dict[str, object] | None = None, shared: dict[str, object] | None = None) -> Method:
    """Build method `name`. `options` are the user's, checked against the method's own;
    `shared` are recipe-wide settings (temperature) passed only to methods that take them."""
    if name not in _REGISTRY:
        raise UserError(f"unknown distillation method {name!r}; valid methods: {', '.join(names())}")
    cls = _REGISTRY[name]
    accepted = options_of(cls)
    options = dict(options or {})
    for key in options:
        if key not in accepted:
            raise UserError(f"method {name!r} has no option {key!r}; its options: {', '.join(accepted) or 'none'}")
    kwargs = {k: v for k, v in (shared or {}).items() if k in accepted}
    kwargs.update({k: _like(accepted[k], v, f"{name}.{k}") for k, v in options.items()})
    return cls(**kwargs)


def _like(default: object, value: object, where: str) -> object:
    """Options arrive as strings from the command line: give them the default's type."""
    if not isinstance(value, str) or isinstance(default, str) or default is inspect.Parameter.empty:
        return value
    try:
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes")
        if isinstance(default, tuple):
            return tuple(v for v in value.split(",") if v)
        return type(default)(value)
    except ValueError:
        raise UserError(f"option {where} must be a {type(default).__name__}, not {value!r}") from None


def method_table() -> list[dict[str, str]]:
    return [{"name": cls.name, "family": cls.family, "paper": cls.paper, "summary": cls.summary,
             "options": ", ".join([f"{k}={v}" for k, v in options_of(cls).items()]
                                  + ([f"--weight {cls.default_weight:g}"] if cls.default_weight != 1.0 else []))}
            for cls in (_REGISTRY[n] for n in names())]


def markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| name | family | loss | options | paper |", "|---|---|---|---|---|"]
    lines += [f"| `{r['name']}` | {r['family']} | {r['summary'].replace('|', '&#124;')} | {r['options'] or '-'} "
              f"| {r['paper']} |" for r in rows]
    return "\n".join(lines)
