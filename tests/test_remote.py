"""The remote runner against a real OpenSSH server on loopback (no mocks).

The fixture starts its own sshd on a free local port with generated keys; CI installs
openssh-server (.ci/run) and sets EDGEKD_REQUIRE_SSHD=1 so a missing sshd fails there.
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists():
        if os.environ.get("EDGEKD_REQUIRE_SSHD"):
            pytest.fail("sshd is not installed (apt-get install openssh-server)")
        pytest.skip("sshd is not installed (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    os.chmod(d, 0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_key")], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
AuthorizedKeysFile {d / 'authorized_keys'}
PidFile {d / 'sshd.pid'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp internal-sftp
StrictModes no
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    log = d / "sshd.log"  # a file, not a pipe nobody reads: a full pipe would stall sshd
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log.open("w"))
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"sshd did not start: {log.read_text()[-500:]}")
    yield {"port": port, "key": d / "user_key", "user": getpass.getuser(), "known_hosts": d / "known_hosts", "log": log}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def ssh_home(sshd, tmp_path, monkeypatch):
    # accept-new writes the host key into ~/.ssh/known_hosts: keep that out of the real home
    monkeypatch.setenv("HOME", str(tmp_path))
    return sshd


def test_bench_on_device_over_ssh(cli, exported_run, ssh_home, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(exported_run, root)
    code, out, err = cli("bench", root, "--target", "raspberry-pi-4", "--remote", f"{ssh_home['user']}@127.0.0.1",
                         "--port", ssh_home["port"], "--identity", ssh_home["key"], "--remote-python", sys.executable,
                         "--runtime", "onnxruntime", "--processes", "2", "--min-seconds", "0.05", "--json")
    assert code == 0, f"{err}\nsshd log:\n{ssh_home['log'].read_text()[-2000:]}"
    report = json.loads(out)["raspberry-pi-4"]
    assert report["measured_on"] == "device" and report["device"].endswith("@127.0.0.1")
    rows = report["rows"]
    assert {r["artifact"] for r in rows} == {"onnx-fp32", "onnx-int8"}
    manifest = json.loads((root / "manifest.json").read_text())
    for r in rows:
        assert "error" not in r, f"{r}\nsshd log:\n{ssh_home['log'].read_text()[-2000:]}"
        assert r["measured_on"] == "device" and "predicted" not in r
        assert r["p50_ms"] > 0 and r["processes"] == 2
        # the device evaluates the artifact on the test set in the same runtime as export's check did
        exported = manifest["members"][r["member"]]["artifacts"][r["artifact"]]["accuracy"]
        assert r["accuracy"] == pytest.approx(exported, abs=1 / manifest["data"]["test"] + 1e-6), r
    saved = json.loads((root / "bench" / "raspberry-pi-4.json").read_text())
    assert saved["rows"] == rows


def test_unreachable_device_is_one_sentence(cli, exported_run, ssh_home, tmp_path):
    run = shutil.copytree(exported_run, tmp_path / "run")  # bench caches its inputs in the run before it connects
    closed = _free_port()
    code, out, err = cli("bench", run, "--target", "raspberry-pi-4", "--remote", "nobody@127.0.0.1",
                         "--port", closed, "--identity", ssh_home["key"])
    assert code == 2 and "cannot reach nobody@127.0.0.1" in err and "Traceback" not in err


def test_auth_failure_is_one_sentence(cli, exported_run, ssh_home, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    run = shutil.copytree(exported_run, tmp_path / "run")
    code, out, err = cli("bench", run, "--target", "raspberry-pi-4", "--remote", f"{ssh_home['user']}@127.0.0.1",
                         "--port", ssh_home["port"], "--identity", tmp_path / "stranger")
    assert code == 2 and "cannot reach" in err and "ermission denied" in err


def test_missing_runtime_on_device_is_a_failed_row(cli, exported_run, ssh_home, tmp_path):
    venvless = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    before = set(Path("/tmp").glob("edgekd.*"))  # the device is this machine: its working folders are here
    run = shutil.copytree(exported_run, tmp_path / "run")
    code, out, err = cli("bench", run, "--target", "raspberry-pi-4", "--remote",
                         f"{ssh_home['user']}@127.0.0.1", "--port", ssh_home["port"], "--identity", ssh_home["key"],
                         "--remote-python", venvless, "--runtime", "onnxruntime", "--processes", "1")
    # the system python has neither numpy nor onnxruntime: refused up front, in one sentence
    assert code == 2 and "cannot import numpy" in err
    assert set(Path("/tmp").glob("edgekd.*")) == before  # the refused session cleaned up after itself


def test_ncnn_artifacts_run_on_the_device_with_the_runtime_module_copied(cli, tiny_run, ssh_home, tmp_path):
    """The device gets the runner and ncnn's module from edgekd/runtimes (under a name that cannot
    shadow the ncnn package), and nothing of edgekd itself."""
    pytest.importorskip("pnnx")
    from edgekd.export.pipeline import export_run

    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    export_run(root, formats=("ncnn",), int8=False)
    code, out, err = cli("bench", root, "--target", "raspberry-pi-4", "--remote", f"{ssh_home['user']}@127.0.0.1",
                         "--port", ssh_home["port"], "--identity", ssh_home["key"], "--remote-python", sys.executable,
                         "--runtime", "ncnn", "--processes", "1", "--min-seconds", "0.05", "--json")
    assert code == 0, f"{err}\nsshd log:\n{ssh_home['log'].read_text()[-2000:]}"
    rows = json.loads(out)["raspberry-pi-4"]["rows"]
    assert {r["artifact"] for r in rows} == {"ncnn-fp32", "ncnn-fp16"} and len(rows) == 4
    for r in rows:
        assert "error" not in r, r
        assert r["measured_on"] == "device" and r["settings"]["runtime"] == "ncnn" and r["p50_ms"] > 0


def test_budget_candidates_are_measured_on_the_device(cli, ssh_home, tmp_path):
    """`distill --remote`: the budget's candidates and the bench after training are timed on the
    device itself over ssh; nothing is predicted."""
    before = set(Path("/tmp").glob("edgekd.*"))
    code, out, err = cli("distill", "--data", "digits", "--chain", "1", "--teacher-arch", "cnn", "--teacher-width", "8",
                         "--teacher-epochs", "1", "--epochs", "1", "--no-baseline", "--target", "raspberry-pi-4",
                         "--latency-budget", "1000", "--set", "budget.candidates=3", "--set", 'export.formats=["onnx"]',
                         "--set", "export.int8=false", "--set", "bench.processes=1", "--set", "bench.min_seconds=0.05",
                         "--remote", f"{ssh_home['user']}@127.0.0.1", "--port", ssh_home["port"],
                         "--identity", ssh_home["key"], "--remote-python", sys.executable,
                         "--out", tmp_path / "r", "-q")
    assert code == 0, f"{err}\nsshd log:\n{ssh_home['log'].read_text()[-2000:]}"
    budget = json.loads((tmp_path / "r" / "manifest.json").read_text())["budget"]
    assert budget["search"]["latency"] == f"measured on raspberry-pi-4 over ssh ({ssh_home['user']}@127.0.0.1)"
    rows = [a for c in budget["candidates"] for a in c["artifacts"].values()]
    assert rows and all(a["device_ms"] == a["latency_ms"] > 0 and "predicted" not in a for a in rows)
    bench = json.loads((tmp_path / "r" / "bench" / "raspberry-pi-4.json").read_text())
    assert bench["measured_on"] == "device" and all(r["measured_on"] == "device" for r in bench["rows"])
    assert budget["verdicts"]["gen-1"]["met"]
    assert set(Path("/tmp").glob("edgekd.*")) == before  # both sessions removed their folders on the device


def test_remote_without_a_target_is_one_sentence(cli, tmp_path):
    code, out, err = cli("distill", "--remote", "pi@raspberrypi", "--out", tmp_path / "r")
    assert code == 2 and "--remote measures the --target device: give --target too" in err
    assert not (tmp_path / "r").exists()
