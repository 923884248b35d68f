import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekd.runs import LOCK

# Tiny but real: every test run trains, exports and measures actual models. One recipe, used
# both as a dict (tiny_run) and as CLI flags (TINY), so the two always describe the same run.
# lr 3e-3: these 2-epoch models have close logits; at the default 1e-2 gen-1's int8 top-1
# agreement lands on the 0.95 verification bar (0.949), and the export tests need it to pass.
TINY_RECIPE = {"chain": {"generations": 2}, "teacher": {"width": 16, "epochs": 3},
               "train": {"epochs": 2, "lr": 3e-3, "min_steps": 0}, "data": {"transfer": "300"},
               "export": {"enabled": False}}
TINY = [arg for section, keys in TINY_RECIPE.items() for key, value in keys.items()
        for arg in ("--set", f"{section}.{key}={value}")]
SOURCE = str(Path(__file__).resolve().parents[1])  # the checkout whose edgekd these tests import


def pytest_collection_modifyitems(config, items):
    # tiny_run trains a run and exported_run, benched_run and damaged build on it; fixturenames
    # holds every fixture a test needs, through other fixtures too
    for item in items:
        if "tiny_run" in item.fixturenames:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the real entry point in-process: returns (exit code, stdout, stderr)."""
    from edgekd.cli import main

    def run(*args: str):
        args = tuple(map(str, args))
        if args[:1] == ("distill",) and "--resume" not in args and not any("min_steps" in a for a in args):
            # tests train for an epoch or two on purpose; the default floor of optimizer steps
            # would make each a few hundred (tests of the floor set it themselves)
            args = ("distill", "--set", "train.min_steps=0", *args[1:])
        monkeypatch.setattr(sys, "argv", ["edgekd", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Iterator[Path]:
    """One small finished run, shared by the tests that only read it."""
    from edgekd.distill.chain import distill
    from edgekd.recipe import from_dict

    root = tmp_path_factory.mktemp("runs") / "tiny"
    recipe = from_dict(TINY_RECIPE)
    distill(recipe, out=root)
    yield from read_only(root)


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    # runs/ defaults and runs/latest must never land in the checkout
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # subprocesses (python -m edgekd, probe scripts) start in tmp_path: they import the edgekd
    # these tests import, not another checkout the virtualenv has installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [SOURCE, os.environ.get("PYTHONPATH")])))


@pytest.fixture(scope="session")
def exported_run(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(tiny_run, root)
    from edgekd.export.pipeline import export_run

    export_run(root, calibration=128)
    yield from read_only(root)


@pytest.fixture
def damaged(exported_run, tmp_path):
    """A fresh copy of the exported run under a given name, for a test to damage."""
    def copy(name):
        shutil.copytree(exported_run, tmp_path / name)
        return tmp_path / name

    return copy


def assert_refused(result, *words):
    """A `cli` result that is bad input: exit 2, one line on stderr naming every word, no traceback."""
    code, out, err = result
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in err.lower(), (w, err)


def read_only(root):
    """A shared run's fixture body: yields the run, then fails if any test changed a file in it.
    A test that writes (resume, export, bench, report) works on its own copy."""
    before = file_hashes(root)
    yield root
    after = file_hashes(root)
    changed = sorted(str(p.relative_to(root)) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"a test wrote into the shared run {root}: {', '.join(changed)}"


def file_hashes(root):
    """Every file under root with its sha256: equal before and after means nothing was written.
    The run's lock file is left out: a refused writer still takes the lock (and names itself in
    it) before it finds what is wrong; the lock says who writes, not what the run holds."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOCK}


def write_npz(path, **arrays):
    """Save arrays as an .npz and return its data spec."""
    np.savez(path, **arrays)
    return f"npz:{path}"
