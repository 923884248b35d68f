"""torchrun: a 2-process gloo run on the CPU against a 1-process one, a killed rank, and a resume
with another number of processes. Real torchrun processes, launched as a user does (--nproc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgekd.distill import distributed

from conftest import TINY, assert_refused

pytestmark = pytest.mark.slow
RECIPE = [*TINY, "--set", "train.threads=1"]  # one thread per process: 2 processes fit 2 cores


def edgekd(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, timeout=600,
                          **kwargs)


def members(root: Path) -> dict[str, dict]:
    return json.loads((root / "manifest.json").read_text())["members"]


def test_two_processes_match_one_and_only_rank_0_writes(tmp_path):
    one = edgekd("distill", *RECIPE, "--out", str(tmp_path / "one"), "-q")
    assert one.returncode == 0, one.stderr
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("edgekd-rank*"))
    two = edgekd("distill", *RECIPE, "--nproc", "2", "--out", str(tmp_path / "two"), "--json")
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout)["run"] == str(tmp_path / "two")  # one rank printed, once
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["compute"]["processes"] == 2
    a, b = members(tmp_path / "one"), members(tmp_path / "two")
    assert a.keys() == b.keys()
    for name in a:  # the same global batches, split in two: within a few points on 1000 test rows
        assert abs(a[name]["test_acc"] - b[name]["test_acc"]) < 0.05, (name, a[name]["test_acc"], b[name]["test_acc"])
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("edgekd-rank*")) == before  # rank 1's copy is gone
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def _rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of torchrun's workers below the launcher process."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
            chain = int(proc.name)
            for _ in range(4):  # launcher -> torchrun -> worker
                chain = int((Path("/proc") / str(chain) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if chain == launcher:
                    break
        except (OSError, ValueError, IndexError):
            continue
        if chain == launcher and "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


def _await_teacher_epoch(proc: subprocess.Popen, root: Path) -> None:
    """Until the teacher's first checkpoint exists: one epoch done, so a kill now leaves one to resume."""
    deadline = time.monotonic() + 300
    while not (root / "teacher" / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the teacher never finished an epoch"
        time.sleep(0.2)


def test_a_killed_rank_ends_the_run_and_it_resumes_with_another_process_count(tmp_path):
    root = tmp_path / "run"
    longer = [*RECIPE, "--set", "teacher.epochs=40"]  # long enough to be killed mid-teacher
    launcher = subprocess.Popen([sys.executable, "-m", "edgekd", "distill", *longer, "--nproc", "2", "--out",
                                 str(root), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _await_teacher_epoch(launcher, root)  # under both ranks
        ranks = _rank_pids(launcher.pid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        code = launcher.wait(timeout=180)  # the other rank must not hang on its next all-reduce
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert code != 0
    assert time.monotonic() - killed < 180
    json.loads((root / "manifest.json").read_text())  # intact
    assert "teacher" not in members(root)
    resumed = edgekd("distill", "--resume", str(root), "-q")  # one process now
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "done" and {"teacher", "gen-1", "gen-2"} <= set(manifest["members"])
    assert manifest["compute"]["processes"] == 2 and manifest["compute_history"][-1]["processes"] == 1


def test_a_killed_one_process_run_resumes_with_two(tmp_path):
    root = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "edgekd", "distill", *RECIPE, "--set", "teacher.epochs=40",
                            "--out", str(root), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _await_teacher_epoch(run, root)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    resumed = edgekd("distill", "--resume", str(root), "--nproc", "2", "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["compute_history"][-1]["processes"] == 2
    payload = torch.load(root / "gen-1" / "model.pt", weights_only=True)  # written once, by rank 0, on the CPU
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())


@pytest.mark.parametrize("methods", [["--method", "fitnet", "--method", "kd"], ["--method", "dml", "--transfer", "0"]])
def test_feature_methods_and_peer_cohorts_train_under_two_processes(tmp_path, methods):
    """fitnet hooks the student's and teacher's submodules and trains an adapter in the objective;
    dml trains a cohort of peers: both have their gradients averaged with the student's."""
    done = edgekd("distill", *RECIPE, *methods, "--set", "chain.generations=1", "--epochs", "4", "--nproc", "2",
                  "--out", str(tmp_path / "r"), "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    history = [json.loads(line) for line in (tmp_path / "r" / "gen-1" / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["loss"] < history[0]["loss"]  # the averaged gradients moved every trained parameter's way


def test_nproc_bad_input_is_one_sentence_before_any_process(cli, tmp_path):
    assert_refused(cli("distill", *TINY, "--nproc", "0", "--out", tmp_path / "r"), "--nproc must be from 1")
    assert_refused(cli("distill", *TINY, "--nproc", "2", "--epochs", "0", "--out", tmp_path / "r"), "epochs")
    assert not (tmp_path / "r").exists()
    assert not distributed.launched()


def test_a_streamed_image_folder_trains_under_two_processes(tmp_path):
    """Data on disk under torchrun: each rank decodes its own rows, the soft targets are
    labelled a block at a time across the ranks and cached on disk, and nothing is left behind."""
    from test_streaming import _folder

    folder = _folder(tmp_path / "d", n=40)
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("edgekd-rank*"))
    done = edgekd("distill", "--data", f"folder:{folder}", "--load", "stream", "--workers", "1", "--chain", "1",
                  "--teacher-arch", "cnn", "--teacher-width", "4", "--teacher-epochs", "2", "--epochs", "2",
                  "--set", "train.min_steps=0", "--set", "train.threads=1", "--no-export", "--nproc", "2",
                  "--out", str(tmp_path / "r"), "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["compute"]["processes"] == 2 and manifest["data"]["load"] == "stream"
    assert {"teacher", "gen-1", "baseline-1"} <= manifest["members"].keys()
    assert not list((tmp_path / "r").rglob("soft_targets.npy"))
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("edgekd-rank*")) == before
