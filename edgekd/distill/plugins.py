"""User plugins: a one-file loss given with `--plugin`, imported once per process.

The file's `@register` decorator adds its methods to the registry
(`edgekd.distill.methods`); this module only imports the file and reports what it added.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from edgekd.distill.methods.base import names
from edgekd.errors import UserError

_PLUGINS: dict[Path, list[str]] = {}  # each file is imported once per process


def load_plugin(path: Path) -> list[str]:
    """Import a user's one-file loss; its @register decorator adds it to the registry.
    Returns the method names the file registered."""
    if not path.is_file():
        raise UserError(f"plugin {path} does not exist")
    if path.suffix != ".py":
        raise UserError(f"plugin {path} is not a Python file (.py)")
    key = path.resolve()
    if key in _PLUGINS:
        return _PLUGINS[key]
    # named by its full path: a/loss.py and b/loss.py are two plugins
    module_name = f"edgekd_plugin_{path.stem}_{hashlib.sha1(str(key).encode()).hexdigest()[:10]}"
    before = set(names())
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # sys.exit(0) in a plugin must not end distill as a success with no run
        del sys.modules[module_name]
        raise UserError(f"plugin {path} called sys.exit({e.code!r}) while loading; a plugin only registers "
                        "methods") from None
    except Exception as e:  # noqa: BLE001  (a user's file may raise anything: one sentence, exit 2)
        del sys.modules[module_name]
        raise UserError(f"plugin {path} failed to load: {type(e).__name__}: {e}") from None
    _PLUGINS[key] = sorted(set(names()) - before)
    return _PLUGINS[key]
