"""What every command promises: bad input is one sentence on stderr (a library's message cut at a word), a
damaged run file is named, and Ctrl-C says how to resume."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import assert_refused, file_hashes


def test_damaged_run_files_are_named(cli, damaged):
    import json

    metrics = damaged("metrics")
    with open(metrics / "gen-1" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val')
    assert_refused(cli("report", metrics), "metrics.jsonl line", "not valid JSON")
    bench = damaged("bench")
    (bench / "bench").mkdir(exist_ok=True)
    (bench / "bench" / "raspberry-pi-4.json").write_text("[]")
    assert_refused(cli("report", bench), "raspberry-pi-4.json", "not an edgekd bench result")
    manifest = damaged("manifest")
    data = json.loads((manifest / "manifest.json").read_text())
    del data["members"]
    (manifest / "manifest.json").write_text(json.dumps(data))
    before = file_hashes(manifest)
    for command in (["report", manifest], ["export", manifest], ["bench", manifest, "-t", "pi4"],
                    ["distill", "--resume", manifest]):
        assert_refused(cli(*command), "manifest.json is damaged", "members")
    assert file_hashes(manifest) == before


def test_long_library_messages_are_cut_at_a_word():
    from edgekd.errors import reason

    text = reason(ValueError("Weights only load failed. " + "In PyTorch 2.6 we changed the default " * 10), 60)
    assert text == "Weights only load failed. In PyTorch 2.6 we changed the…"
    assert reason(ValueError("short"), 60) == "short"


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path):
    args = [sys.executable, "-m", "edgekd", "distill", "--chain", "1", "--teacher-epochs", "50", "--transfer", "0",
            "--set", "teacher.width=16", "--set", "train.min_steps=0", "--no-export", "--out", str(tmp_path / "r")]
    # a background job inherits SIGINT ignored, and Python then installs no Ctrl-C handler
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "r" / "teacher" / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0
    assert f"edgekd distill --resume {tmp_path / 'r'}" in err, err[-2000:]
