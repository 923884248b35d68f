"""Reading the TOML files users hand edgekd (recipes, target profiles) within limits: a
size cap and a nesting cap, so a hostile or broken file is one sentence, not a RecursionError
from deep inside the parser or a parse of gigabytes."""

from __future__ import annotations

import sys
import tomllib

from edgekd.errors import UserError

MAX_CHARS = 1 << 20  # a recipe or a profile is a few KB; 1 Mi characters leaves room for long source notes


def loads(text: str, where: str) -> dict:
    """tomllib.loads, refusing oversized or too deeply nested files; TOMLDecodeError passes on."""
    if len(text) > MAX_CHARS:
        raise UserError(f"{where} holds {len(text):,} characters; a recipe or target profile is at most {MAX_CHARS:,}")
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise UserError(f"{where} nests tables or arrays too deeply to be a recipe or target profile") from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # an integer over Python's int digit limit: tomllib lets int()'s ValueError through
        raise UserError(f"{where} holds a number of more than {sys.get_int_max_str_digits():,} digits; "
                        "a recipe or target profile needs none that long") from None


def dumps(tables: dict[str, dict], header: list[str] = ()) -> str:
    """A recipe ({section: {key: value}}) as TOML that `loads` reads back to the same values:
    text, whole numbers, floats, booleans and lists of text, the only kinds a recipe holds."""
    lines = [f"# {line}" for line in header]
    for section, keys in tables.items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_value(value)}" for key, value in keys.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _value(value) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")  # a validated recipe holds none
        return repr(value)  # the shortest text that reads back to the same float: 0.01, 1e-05
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's
