"""A full or read-only disk, on a real small tmpfs: refused before training when the run
cannot fit, one sentence (exit 2) when it fills up mid-run, nothing already written damaged,
and `--resume` finishing the run once space is freed."""

import errno
import json
import os
import shutil
import subprocess

import pytest

from edgekd import diskspace
from edgekd.diskspace import DiskError
from edgekd.runs import Run, write_json

from conftest import TINY, assert_refused, file_hashes


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, name) -> a fresh tmpfs of that size under tmp_path; all unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs these tests as root)")
    mounted = []

    def mount(size: str, name: str = "disk"):
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)  # busy: detach now, freed when let go


def fill(directory, leave: int):
    """Write a ballast file that leaves about `leave` bytes free on directory's file system."""
    ballast = directory / "ballast"
    room = shutil.disk_usage(directory).free - leave
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, room // 4096 * 4096))
    assert shutil.disk_usage(directory).free <= leave + 4096
    return ballast


def remount_read_only(where):
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def leftovers(root):
    return sorted(p.name for p in root.rglob("*.tmp*"))


def test_a_failed_write_keeps_the_previous_file_and_names_what_it_needed(tmpfs):
    disk = tmpfs("256k")
    path = disk / "manifest.json"
    write_json(path, {"kept": True})
    fill(disk, leave=8192)
    with pytest.raises(DiskError) as e:
        write_json(path, {"rows": ["x" * 100] * 400})  # ~42 KB of JSON
    assert json.loads(path.read_text()) == {"kept": True}
    assert leftovers(disk) == []
    said = str(e.value)
    assert said.startswith(f"no space left on {disk} (needed about 4") and "free); free space and run" in said


def test_torch_save_on_a_full_disk_is_a_disk_error_not_unexpected_pos(tmpfs):
    from edgekd.models import ArchSpec, build, save_model

    disk = tmpfs("256k")
    spec = ArchSpec("mlp", 256, 2, (40,), 10)
    with pytest.raises(DiskError) as e:
        save_model(build(spec), spec, disk / "gen-1" / "model.pt")  # ~340 KB of weights
    assert e.value.code == errno.ENOSPC and "needed about" in str(e.value)
    assert leftovers(disk) == [] and not (disk / "gen-1" / "model.pt").exists()


def test_a_run_that_cannot_fit_is_refused_before_training(tmpfs, cli):
    disk = tmpfs("256k")
    out = disk / "run"
    assert_refused(cli("distill", *TINY, "--out", out), "not enough space", str(out), "free", "--out")
    assert list(disk.iterdir()) == []  # not even the run directory or its lock


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_in_one_sentence_and_resume_finishes(tmpfs, cli, monkeypatch):
    import edgekd.distill.chain as chain

    disk = tmpfs("32m")
    out = disk / "run"
    state = {}

    def teacher_then_fill(ctx, teacher):
        done = chain_finish(ctx, teacher)
        state["teacher"] = file_hashes(ctx.run.root)
        state["ballast"] = fill(disk, leave=16_384)  # less than gen-1's first checkpoint
        return done

    chain_finish = chain.finish_teacher
    monkeypatch.setattr(chain, "finish_teacher", teacher_then_fill)
    code, _, err = cli("distill", *TINY, "--out", out, "-q")
    assert_refused((code, _, err), "no space left on", "needed about", "free space and run",
                   f"edgekd distill --resume {out}")
    manifest = Run.open(out).manifest()  # still parses
    assert manifest["status"] == "running" and "teacher" in manifest["members"]
    assert manifest["disk"]["estimate_bytes"] > 0
    assert leftovers(out) == []
    after = file_hashes(out)
    assert all(after[p] == h for p, h in state["teacher"].items() if p.name != "manifest.json")

    monkeypatch.setattr(chain, "finish_teacher", chain_finish)
    state["ballast"].unlink()
    code, _, err = cli("distill", "--resume", out, "-q")
    assert code == 0, err
    assert Run.open(out).manifest()["status"] == "done"


def test_a_read_only_run_is_refused_in_one_sentence(tmpfs, exported_run, cli):
    disk = tmpfs("16m")
    root = disk / "run"
    shutil.copytree(exported_run, root)
    remount_read_only(disk)
    assert_refused(cli("export", root, "--format", "onnx", "--no-int8"), "read-only file system", "make it writable")
    assert_refused(cli("bench", root, "-t", "host", "--runtime", "torch"), "read-only file system", "run")
    assert_refused(cli("report", root), "read-only file system", "report")


@pytest.mark.slow
def test_the_estimate_covers_what_a_tiny_run_writes(tmp_path, cli):
    """The estimate is above what the run writes with its exports, and not wildly so."""
    code, _, err = cli("distill", *TINY, "--set", "export.enabled=true", "--set", "bench.enabled=false",
                       "--out", tmp_path / "run", "-q")
    assert code == 0, err
    estimate = Run.open(tmp_path / "run").manifest()["disk"]["estimate_bytes"]
    used = diskspace.used_bytes(tmp_path / "run")
    assert used < estimate < 6 * used, (used, estimate)
