"""SIGKILL at every phase of `edgekd distill` (teacher training, student training, export, bench,
report), then `--resume`: the finished run must equal an uninterrupted run of the same recipe.

Equal means: every member's test accuracy, its weights (state dicts compared tensor by tensor:
torch.save writes a random serialization id, so model.pt bytes differ between identical saves),
and the sha256 of each exported ONNX file, whose bytes are deterministic. Bench timings and the
report's pages are measurements, not results, and are left out.

One run is killed at each phase in turn, each kill followed by a `--resume` that is itself killed
at the next phase, so the whole matrix costs about two runs, and the uninterrupted one runs beside it. A phase is found
by polling the run directory for the file that starts it; one the process passed between polls
is skipped with the reason, never guessed at with a timer."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgekd.models.io import load_payload
from edgekd.runs import Run

from conftest import SOURCE

pytestmark = pytest.mark.slow

# The smallest run with every phase: 3 epochs each, so a kill can land after one epoch's checkpoint
# and before the last; one ONNX artifact, one bench process. One torch thread: the same sums in the
# same order in every process.
RECIPE = """
[data]
transfer = "0"
[teacher]
width = 4
epochs = 3
[train]
epochs = 3
threads = 1
[chain]
generations = 1
baseline = false
[export]
formats = ["onnx"]
int8 = false
[bench]
targets = ["raspberry-pi-4"]
processes = 1
min_seconds = 0.01
"""
MEMBERS = ("teacher", "gen-1")


def _status(run: Run) -> str | None:
    try:
        return json.loads(run.manifest_path.read_text()).get("status")
    except (OSError, ValueError):  # not written yet
        return None


# phase -> whether the run directory shows that phase under way (checked in this order)
PHASES = {
    "teacher": lambda run: run.checkpoint_path("teacher").exists() and not run.eval_path("teacher").exists(),
    "student": lambda run: run.checkpoint_path("gen-1").exists() and not run.eval_path("gen-1").exists(),
    "export": lambda run: _status(run) == "trained" and not run.bench_dir.exists(),
    "bench": lambda run: run.bench_dir.exists() and not run.report_dir.exists(),
    "report": lambda run: run.report_dir.exists() and _status(run) != "done",
}


def _distill(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SOURCE, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgekd", "distill", *map(str, args), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def _kill_at(proc: subprocess.Popen, run: Run, under_way) -> bool:
    """SIGKILL the process as soon as the run shows the phase; False when it ended first."""
    while proc.poll() is None:
        if under_way(run):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            try:  # a bench runner ends with its parent (test_faults); do not leave one behind here
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return True
        time.sleep(0.002)
    proc.communicate()
    return False


def results(root: Path) -> dict:
    run = Run(root)
    manifest = run.manifest()
    found = {}
    for member in MEMBERS:
        artifacts = manifest["members"][member].get("artifacts", {})
        found[member] = {
            "test_acc": json.loads(run.eval_path(member).read_text())["test_acc"],
            "weights": load_payload(run.model_path(member))["state_dict"],
            "onnx_sha256": {name: a["sha256"] for name, a in artifacts.items()},
            "onnx_on_disk": {name: run.artifact_change(name, a) for name, a in artifacts.items()},
        }
    return found


def assert_same(got: dict, want: dict) -> None:
    for member in MEMBERS:
        g, w = got[member], want[member]
        assert g["test_acc"] == w["test_acc"], member
        assert g["weights"].keys() == w["weights"].keys(), member
        for name, tensor in w["weights"].items():
            assert torch.equal(g["weights"][name], tensor), f"{member} {name} differs after resume"
        assert g["onnx_sha256"] == w["onnx_sha256"] and g["onnx_sha256"], member
        assert set(g["onnx_on_disk"].values()) == {None}, g["onnx_on_disk"]  # the files are what was recorded


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted reference run, and beside it (at the same time: each takes one core) a run
    killed at each phase in turn and resumed after each kill, then resumed to the end.
    Returns ({phase: killed there}, reference root, killed root)."""
    folder = tmp_path_factory.mktemp("kill")
    (folder / "recipe.toml").write_text(RECIPE)
    reference = _distill("--config", folder / "recipe.toml", "--out", folder / "reference")
    root = folder / "killed"
    run, args, hits = Run(root), ["--config", folder / "recipe.toml", "--out", root], {}
    try:
        for phase, under_way in PHASES.items():
            hits[phase] = _kill_at(_distill(*args), run, under_way)
            args = ["--resume", root]
            assert Run.open(root).manifest()["recipe"]  # what a kill left is a run --resume can open
        _finish(_distill(*args))
    finally:
        _finish(reference)
    return hits, folder / "reference", root


@pytest.mark.parametrize("phase", PHASES)
def test_killed_at_each_phase_resumes_to_the_uninterrupted_result(runs, phase):
    hits, reference, root = runs
    if not hits[phase]:
        pytest.skip(f"the {phase} phase ended between two polls of the run directory; it was not killed")
    assert_same(results(root), results(reference))


def test_training_and_export_were_killed(runs):
    """Training and export each take seconds even in this tiny run: a missed kill there is a real miss."""
    hits, _, _ = runs
    assert hits["teacher"] and hits["student"] and hits["export"], hits
