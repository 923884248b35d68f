"""One writer per run directory, with real concurrent processes: a second writer is refused
in one sentence naming the holder (or queues with --wait), readers wait for the writer, and a
killed holder leaves no stale lock."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from edgekd.locking import run_lock
from edgekd.runs import lock_path

from conftest import assert_refused, file_hashes

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgekd.locking import run_lock
    root, command, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    with run_lock(root, command, create=True):
        print("held", flush=True)
        time.sleep(seconds)  # bounded: the test ends it sooner, or it ends by itself
    print("released", flush=True)
""")


def hold(root, command="export", seconds=60.0) -> subprocess.Popen:
    """Another process that holds the run's lock, as `edgekd COMMAND` would, until it is killed or its time is up."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), command, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def run_copy(exported_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    return root


def test_a_second_writer_is_refused_naming_the_holder(run_copy, cli):
    holder = hold(run_copy, "export")
    try:
        before = file_hashes(run_copy)
        holds = f"PID {holder.pid} (edgekd export)"
        assert_refused(cli("export", run_copy, "--format", "onnx", "--no-int8"), holds, "--wait")
        assert_refused(cli("bench", run_copy, "-t", "host", "--runtime", "torch"), holds)
        assert_refused(cli("distill", "--resume", run_copy), holds)
        assert file_hashes(run_copy) == before  # the refused commands wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_two_new_runs_into_one_directory_are_kept_apart(tmp_path, cli):
    out = tmp_path / "new"
    holder = hold(out, "distill")  # a distill that has not written its manifest yet
    try:
        assert_refused(cli("distill", "--out", out, "--no-export"), f"PID {holder.pid} (edgekd distill)")
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(run_copy, cli):
    holder = hold(run_copy, "bench")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(run_copy).exists()  # the file stays; the OS dropped the lock with the process
    code, out, err = cli("export", run_copy, "--format", "onnx", "--no-int8", "-q")
    assert code == 0, err


def test_wait_queues_behind_the_writer(run_copy, cli):
    holder = hold(run_copy, "export", seconds=2.0)
    code, out, err = cli("export", run_copy, "--format", "onnx", "--no-int8", "-q", "--wait")
    assert code == 0, err
    assert f"waiting for PID {holder.pid} (edgekd export)" in err
    assert holder.wait(timeout=30) == 0 and holder.stdout.read().strip() == "released"  # it finished first


def test_report_waits_for_the_writer_to_finish(run_copy, cli):
    holder = hold(run_copy, "bench", seconds=2.0)
    code, out, err = cli("report", run_copy, "-q")
    assert code == 0, err
    assert holder.poll() is not None  # report read the run only after the bench had let go
    assert f"waiting for PID {holder.pid} (edgekd bench)" in err


def test_the_lock_is_reentrant_and_a_refused_new_run_leaves_no_directory(tmp_path):
    root = tmp_path / "never-started"
    with run_lock(root, "distill", create=True):
        with run_lock(root, "export"):  # distill's own export runs under distill's lock
            assert lock_path(root).is_file()
    assert not root.exists()  # nothing but the lock was made: the directory goes with it
    with pytest.raises(RuntimeError):
        with run_lock(root, "distill", create=True):
            raise RuntimeError("a refused recipe")
    assert not root.exists()


def test_a_forked_child_that_outlives_the_command_does_not_keep_the_lock(tmp_path):
    """A DataLoader worker forked during a run may live on after it (a folder's persistent pool,
    in a process that runs several commands): the run's lock must still go with the command."""
    root = tmp_path / "run"
    root.mkdir()
    with run_lock(root, "distill"):
        pid = os.fork()
        if pid == 0:  # the child: lingers past the parent's release, then exits without cleanup
            import time
            time.sleep(3)
            os._exit(0)
    try:
        probe = subprocess.run([sys.executable, "-c", HOLDER, str(root), "export", "0"],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0 and "released" in probe.stdout, probe.stderr
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
