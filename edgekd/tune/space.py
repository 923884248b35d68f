"""The search space of `edgekd tune`: which recipe keys a study varies, and over what range.

    temperature   distill.temperature   log-uniform, 1 to 10
    alpha         distill.alpha         uniform, 0 to 1
    lr            train.lr              log-uniform, the recipe's / 10 to x 3
    epochs        train.epochs          integer, the recipe's / 3 to x 2
    weight.NAME   a method's weight     log-uniform, the recipe's / 10 to x 10; every method chosen
                                        but the default one, whose weight alpha already sets

Each default range is widened to hold the recipe's own value, which is the study's first
trial. `--space NAME=LOW:HIGH` sets a range, `--space NAME=VALUE` fixes a key (not searched).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgekd.errors import UserError
from edgekd.recipe import EXAMPLE_METHOD, Recipe, method_weights, validate

WEIGHT = "weight."  # weight.NAME: the weight of method NAME


@dataclass(frozen=True)
class Param:
    low: float
    high: float
    integer: bool = False
    log: bool = False

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def distribution(self):
        import optuna

        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial, name: str) -> float:
        if self.fixed:
            return int(self.low) if self.integer else self.low
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Space = dict[str, Param]

# (section, key) of each recipe number a study can vary, and its default range from the recipe's value
KEYS = {"temperature": ("distill", "temperature"), "alpha": ("distill", "alpha"), "lr": ("train", "lr"),
        "epochs": ("train", "epochs")}


def current(recipe: Recipe) -> dict[str, float]:
    """The recipe's own value of every parameter its space can hold."""
    from edgekd.distill.objective import build_objective  # torch: only once a space is built

    values: dict[str, float] = {name: getattr(getattr(recipe, s), k) for name, (s, k) in KEYS.items()}
    # the weight each method trains with: the recipe's, else the method's own default_weight (not 1
    # for every method), so that trial 0 trains the recipe as asked
    weights = build_objective(recipe).weights
    for method in weighted_methods(recipe):
        values[WEIGHT + method] = weights[method]
    return values


def weighted_methods(recipe: Recipe) -> list[str]:
    return [m for m in recipe.distill.methods if m != EXAMPLE_METHOD]


def default_space(recipe: Recipe) -> Space:
    now = current(recipe)
    ranges = {"temperature": Param(1.0, 10.0, log=True), "alpha": Param(0.0, 1.0),
              "lr": Param(now["lr"] / 10, now["lr"] * 3, log=True),
              "epochs": Param(max(1, round(now["epochs"] / 3)), now["epochs"] * 2, integer=True)}
    for name in now:
        if name.startswith(WEIGHT):
            ranges[name] = Param(now[name] / 10, now[name] * 10, log=True) if now[name] > 0 else Param(0.0, 1.0)
    # the recipe's own value is the first trial: the range must hold it
    return {name: dataclasses.replace(p, low=min(p.low, now[name]), high=max(p.high, now[name]))
            for name, p in ranges.items()}


def parse_space(recipe: Recipe, items: Sequence[str]) -> Space:
    """The default space with `--space NAME=LOW:HIGH` (or NAME=VALUE) applied; each end is
    checked as the recipe checks that key."""
    space = default_space(recipe)
    for item in items:
        name, eq, text = (part.strip() for part in item.partition("="))
        if not eq:
            raise UserError(f"--space {item!r}: expected NAME=LOW:HIGH or NAME=VALUE, e.g. lr=1e-3:3e-2")
        if name not in space:
            raise UserError(f"--space {item!r}: unknown parameter {name!r}; this recipe tunes {', '.join(space)}")
        base = space[name]
        low_text, colon, high_text = text.partition(":")
        try:
            low = float(low_text)
            high = float(high_text) if colon else low
        except ValueError:
            raise UserError(f"--space {item!r}: expected numbers, e.g. {name}=LOW:HIGH") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise UserError(f"--space {item!r}: give finite numbers with LOW <= HIGH")
        if base.integer and (low != int(low) or high != int(high)):
            raise UserError(f"--space {item!r}: {name} takes whole numbers")
        log = base.log and low > 0  # a range from 0 cannot be log-uniform
        for end in (low, high):
            try:
                validate(apply(recipe, {name: int(end) if base.integer else end}))
            except UserError as e:
                raise UserError(f"--space {item!r}: {e}") from None
        space[name] = Param(int(low), int(high), True, log) if base.integer else Param(low, high, False, log)
    return space


def apply(recipe: Recipe, params: dict[str, float]) -> Recipe:
    """The recipe with `params` (names of the space) in place."""
    sections: dict[str, dict[str, Any]] = {}
    weights = method_weights(recipe)
    for name, value in params.items():
        if name.startswith(WEIGHT):
            weights[name[len(WEIGHT):]] = value
        else:
            section, key = KEYS[name]
            sections.setdefault(section, {})[key] = value
    changed = {s: dataclasses.replace(getattr(recipe, s), **keys) for s, keys in sections.items()}
    recipe = dataclasses.replace(recipe, **changed)
    if any(n.startswith(WEIGHT) for n in params):
        recipe = dataclasses.replace(recipe, distill=dataclasses.replace(
            recipe.distill, weights=tuple(f"{m}={w!r}" for m, w in weights.items())))
    return recipe


def space_to_dict(space: Space) -> dict[str, dict[str, Any]]:
    return {name: p.to_dict() for name, p in space.items()}


def space_from_dict(raw: dict[str, dict[str, Any]]) -> Space:
    return {name: Param(**p) for name, p in raw.items()}
