"""Device profiles: every built-in loads with a source for each number, and bad profiles
are refused with one sentence naming the file and the field."""

import json
from pathlib import Path

import pytest

from edgekd import targets
from edgekd.errors import UserError
from edgekd.targets import FIELDS, NUMERIC, RUNTIMES, builtin_dir, list_targets, load_target, probe_host

NUMERIC_FIELDS = [k for k, f in FIELDS.items() if f.kind in NUMERIC]

# A valid user profile; each bad case below edits one line of it.
GOOD = """\
name = "my-board"
description = "a board of my own"
cpu = "Cortex-A55"
cores = 4
clock_ghz = 1.8
isa = "ARMv8.2-A"
simd = ["neon", "dotprod"]
peak_gflops_fp32 = 28.8
memory_bandwidth_gbs = 6.4
ram_gb = 2.0
runtimes = ["onnxruntime"]

[reference_latency_ms]
"mobilenet_v2.ncnn.4t" = 80.0

[sources]
cores = "data sheet"
clock_ghz = "data sheet"
peak_gflops_fp32 = "derived: 4 x 1.8 GHz x 4 FLOP/cycle"
memory_bandwidth_gbs = "derived: 1600 MT/s x 32-bit"
ram_gb = "data sheet"
reference_latency_ms = "my own measurement"
"""


def write(directory: Path, text: str, stem: str = "board") -> Path:
    path = directory / f"{stem}.toml"
    path.write_text(text)
    return path


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


@pytest.mark.parametrize("target", list_targets(), ids=lambda t: t.name)
def test_every_profile_is_complete_and_sourced(target):
    for key in NUMERIC_FIELDS:
        value = getattr(target, key)
        if value is None or value == {}:
            continue  # optional and absent (a host whose clock cannot be read has none)
        assert target.sources.get(key, "").strip(), f"{target.name}: {key} has no source"
        for v in value.values() if isinstance(value, dict) else [value]:
            assert v > 0, f"{target.name}: {key} = {v}"
    assert set(target.runtimes) <= set(RUNTIMES)
    assert target.threads >= 1
    json.dumps(target.to_dict())  # reports embed it
    if not target.probed:
        assert Path(target.path).stem == target.name
        assert load_target(target.name) == target


def test_builtins_are_the_repository_folder():
    assert builtin_dir() == Path(targets.__file__).resolve().parent.parent / "targets"
    names = {t.name for t in list_targets()}
    assert {"raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w", "jetson-nano", "jetson-orin-nano",
            "intel-n100", "x86-laptop", "host"} <= names
    assert list_targets()[-1].name == "host"


def test_raspberry_pi_means_the_pi_4():
    assert load_target("raspberry-pi").name == "raspberry-pi-4"
    owners = [t.name for t in list_targets() if "raspberry-pi" in t.aliases]
    assert owners == ["raspberry-pi-4"]


def test_user_profile_from_a_path(tmp_path):
    path = write(tmp_path, GOOD, stem="any-file-name")  # a user's file need not match its name
    t = load_target(str(path))
    assert (t.name, t.cores, t.clock_ghz, t.threads, t.simd) == ("my-board", 4, 1.8, 4, ("neon", "dotprod"))
    assert t.reference_latency_ms == {"mobilenet_v2.ncnn.4t": 80.0}
    assert t.path == str(path.resolve()) and not t.probed
    budget = load_target(str(write(tmp_path, edit('cores = 4', 'cores = 4\nlatency_budget_ms = 20'), stem="b")))
    assert budget.latency_budget_ms == 20.0  # a requirement, not a fact about the board: it needs no source


BAD = [
    pytest.param(edit('cores = 4', 'cores = 4\ncolour = "red"'), ["colour", "valid fields"], id="unknown-field"),
    pytest.param(edit('cores = 4\n', ''), ["missing required field 'cores'"], id="missing-field"),
    pytest.param(edit('clock_ghz = 1.8', 'clock_ghz = "1.5 GHz"'),
                 ["clock_ghz must be a number in GHz, not '1.5 GHz'"], id="unit-in-value"),
    pytest.param(edit('cores = 4', 'cores = 4.5'), ["cores must be a whole number"], id="fractional-cores"),
    pytest.param(edit('simd = ["neon", "dotprod"]', 'simd = "neon"'), ["simd must be a list"], id="not-a-list"),
    pytest.param(edit('ram_gb = "data sheet"\n', ''), ["ram_gb", "[sources]"], id="number-without-source"),
    pytest.param(edit('reference_latency_ms = "my own measurement"\n', ''), ["reference_latency_ms", "[sources]"],
                 id="latencies-without-source"),
    pytest.param(edit('ram_gb = "data sheet"', 'ram_gb = "data sheet"\nram = "typo"'), ["[sources]", "'ram'"],
                 id="source-for-unknown-field"),
    pytest.param(edit('ram_gb = "data sheet"', 'ram_gb = 2.0'), ["[sources].ram_gb must be text", "not 2.0"],
                 id="source-not-text"),
    pytest.param(edit('name = "my-board"', 'name = "../../evil"'), ["name '../../evil' must be letters"],
                 id="name-not-a-file-name"),
    pytest.param(edit('ram_gb = 2.0', 'ram_gb = 0'), ["ram_gb must be positive"], id="zero"),
    pytest.param(edit('ram_gb = 2.0', 'ram_gb = nan'), ["ram_gb must be a number in GB"], id="nan"),  # valid TOML
    pytest.param(edit('ram_gb = 2.0', 'ram_gb = inf'), ["ram_gb must be a number in GB"], id="inf"),
    pytest.param(edit('= 80.0', '= -3.0'), ["reference_latency_ms must be positive"], id="negative-latency"),
    pytest.param(edit('runtimes = ["onnxruntime"]', 'runtimes = ["tensorrt"]'), ["runtimes", "'tensorrt'"],
                 id="unknown-runtime"),
    pytest.param('name = "my-board"\ncores = ', ["invalid TOML"], id="invalid-toml"),
    pytest.param(edit('name = "my-board"', 'name = "raspberry-pi-4"'), ["belongs to a built-in target"],
                 id="built-in-name"),
]


@pytest.mark.parametrize("text, expected", BAD)
def test_bad_profile_is_one_sentence_naming_file_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_target(str(path))
    message = str(e.value)
    assert "board.toml" in message and "\n" not in message
    for part in expected:
        assert part in message


def test_unknown_target_lists_names_and_aliases():
    with pytest.raises(UserError, match="no-such-board") as e:
        load_target("no-such-board")
    assert "raspberry-pi-4" in str(e.value) and "raspberry-pi = raspberry-pi-4" in str(e.value)
    assert "host" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found.*missing.toml"):
        load_target(str(tmp_path / "missing.toml"))


def test_builtin_name_must_match_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(targets, "builtin_dir", lambda: tmp_path)
    write(tmp_path, GOOD, stem="other-board")
    with pytest.raises(UserError, match="other-board.toml: name 'my-board' must equal the file name"):
        load_target("other-board")


def test_an_alias_belongs_to_one_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(targets, "builtin_dir", lambda: tmp_path)
    for name in ("board-a", "board-b"):
        write(tmp_path, edit('name = "my-board"', f'name = "{name}"\naliases = ["shared"]'), stem=name)
    with pytest.raises(UserError, match=r"board-b.toml: alias 'shared' is already used by .*board-a.toml"):
        list_targets()


def test_host_is_probed_and_measured():
    h = load_target("host")
    assert h is probe_host()  # measured once per process
    assert h.probed and h.name == "host" and h.path is None
    assert h.cores >= 1 and h.threads == h.cores and h.ram_gb > 0
    assert h.peak_gflops_fp32 > 0 and h.memory_bandwidth_gbs > 0
    for key in ("peak_gflops_fp32", "memory_bandwidth_gbs", "cores", "ram_gb"):
        assert "measured on this host by edgekd.targets.probe_host" in h.sources[key]


def test_a_probe_on_a_busy_machine_says_so():
    import subprocess
    import sys
    import time

    from edgekd import host
    from edgekd.targets import busy_warning

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(host.cores())]
    try:
        time.sleep(0.3)
        busy = probe_host.__wrapped__()  # a fresh probe, not the cached one
    finally:
        for p in spinners:
            p.kill()
    assert busy.busy_cpus >= 0.25 * busy.cores
    assert "other processes used" in busy.sources["peak_gflops_fp32"]
    assert "read low" in busy_warning(busy)


PINNED_PROBE = """
import os, subprocess, sys, time
from edgekd.targets import probe_host
os.sched_setaffinity(0, {0})
for cpu in (1, 0):  # a spinner on the other CPU, then on the probe's own
    spinner = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\\nwhile True: pass"])
    time.sleep(0.3)
    print(probe_host.__wrapped__().busy_cpus)
    spinner.kill()
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_load_on_cpus_the_probe_cannot_use_does_not_count():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PINNED_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    elsewhere, beside = map(float, done.stdout.split())
    # counted machine-wide, the spinner elsewhere would read about 1 CPU, more than the one beside (~0.5)
    assert beside > 0.3 and elsewhere < beside - 0.15, (elsewhere, beside)
