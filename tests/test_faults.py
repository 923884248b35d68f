"""What a killed or crashed process leaves behind: temporary files a later writer clears,
and bench children that end with their parent."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from edgekd.bench.local import RUNNER, Job, Settings, runner_command

from conftest import file_hashes


def test_a_writer_clears_what_a_killed_one_left_half_written(exported_run, tmp_path, cli):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    openvino = root / "gen-1" / "openvino"
    leftovers = [root / ".manifest.json.ab12cd.tmp", root / "gen-1" / ".model.pt.k2j4.tmp",
                 openvino / ".model.4242.tmp.xml", openvino / ".model.4242.tmp.bin"]
    for path in leftovers:
        path.write_text("half-written")
    kept = root / "notes.tmp"  # not edgekd's pattern: a user's file stays
    kept.write_text("mine")
    before = {p: h for p, h in file_hashes(root).items() if p not in leftovers}
    code, out, err = cli("bench", root, "-t", "host", "--runtime", "torch", "--processes", "1", "--min-seconds", "0.01",
                         "-q")
    assert code == 0, err
    assert not any(p.exists() for p in leftovers) and kept.read_text() == "mine"
    after = file_hashes(root)
    assert all(after.get(p) == h for p, h in before.items() if "bench" not in p.parts and "report" not in p.parts)


PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen(sys.argv[1:])
    print(child.pid, flush=True)
    time.sleep(60)  # killed by the test long before this ends
""")


def test_a_bench_child_ends_with_its_parent(exported_run, tmp_path):
    """A killed bench must not leave its runner measuring on as an orphan."""
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.zeros((4, 40), np.float32), y=np.zeros(4, np.int64))
    job = Job("gen-1", "onnx-fp32", exported_run / "gen-1" / "model.onnx", "onnxruntime")
    argv = runner_command(job, Settings(threads=1, min_seconds=30.0), inputs)
    assert argv[1] == str(RUNNER)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *argv], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(RUNNER.parents[2])})
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the runner is importing onnxruntime or measuring by now
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # bounded: 10 s at most
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        _reap(child)
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the runner outlived its parent by 10 s")


def _reap(pid: int) -> None:
    """An orphan is re-parented to init (or this process, as a subreaper); a zombie still answers kill(0)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
