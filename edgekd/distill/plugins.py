"""User plugins: a one-file loss or model family given with `--plugin`, imported once per process.

The file's `@register` decorator adds its methods to the method registry
(`edgekd.distill.methods`), its `@register_family("name")` its model families to the
family registry (`edgekd.models`); this module only imports the file and reports what it
added. A run records its plugins (distill.plugins), and everything that rebuilds the run's
models in another process (resume, export, the torch reference in bench) loads them first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import NamedTuple

from edgekd.distill.methods.base import names
from edgekd.errors import UserError
from edgekd.models import families


class Registered(NamedTuple):
    methods: list[str]
    families: list[str]


_PLUGINS: dict[Path, Registered] = {}  # each file is imported once per process


def load_plugin(path: Path) -> Registered:
    """Import a user's one-file plugin; its decorators add methods and model families to
    their registries. Returns what the file registered."""
    if not path.is_file():
        raise UserError(f"plugin {path} does not exist")
    if path.suffix != ".py":
        raise UserError(f"plugin {path} is not a Python file (.py)")
    key = path.resolve()
    if key in _PLUGINS:
        return _PLUGINS[key]
    # named by its full path: a/loss.py and b/loss.py are two plugins
    module_name = f"edgekd_plugin_{path.stem}_{hashlib.sha1(str(key).encode()).hexdigest()[:10]}"
    before, families_before = set(names()), set(families())
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # sys.exit(0) in a plugin must not end distill as a success with no run
        del sys.modules[module_name]
        raise UserError(f"plugin {path} called sys.exit({e.code!r}) while loading; a plugin only registers "
                        "methods and model families") from None
    except Exception as e:  # noqa: BLE001  (a user's file may raise anything: one sentence, exit 2)
        del sys.modules[module_name]
        raise UserError(f"plugin {path} failed to load: {type(e).__name__}: {e}") from None
    _PLUGINS[key] = Registered(sorted(set(names()) - before), sorted(set(families()) - families_before))
    return _PLUGINS[key]


def load_run_plugins(manifest: dict) -> None:
    """The plugins a run was made with (its recipe's distill.plugins), before its models are rebuilt:
    a plugin family's models cannot be built without them."""
    for path in manifest.get("recipe", {}).get("distill", {}).get("plugins") or ():
        load_plugin(Path(path))
