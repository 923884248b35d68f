"""Device profiles: every built-in loads with a source for each number, and bad profiles
are refused with one sentence naming the file and the field."""

import json
import os
import re
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
    # finite but beyond any board: the predictions scaled by them would overflow to Infinity
    pytest.param(edit('ram_gb = 2.0', 'ram_gb = 1e-300'), ["ram_gb must be between 0.001 and 100000"],
                 id="tiny-ram"),
    pytest.param(edit('cores = 4', 'cores = 1000000'), ["cores must be between 1 and 4096"], id="absurd-cores"),
    pytest.param(edit('peak_gflops_fp32 = 28.8', 'peak_gflops_fp32 = 1e-300'),
                 ["peak_gflops_fp32 must be between 0.001 and"], id="tiny-peak"),
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


def test_a_probe_on_a_busy_machine_says_so(monkeypatch):
    """What a probe reports for the load it measured. The figure is injected, so the machine's
    real load cannot decide the outcome; the next two tests measure it for real."""
    import dataclasses

    from edgekd import host
    from edgekd.targets import busy_warning

    class EveryCpuBusy:  # host.OtherLoad's interface: .cpus is set when the block ends
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.cpus = float(host.cores())

    monkeypatch.setattr(host, "OtherLoad", EveryCpuBusy)
    busy = probe_host.__wrapped__()  # a fresh probe, not the cached one
    assert busy.busy_cpus == busy.cores
    for key in ("peak_gflops_fp32", "memory_bandwidth_gbs"):
        assert f"other processes used {busy.cores} of {busy.cores} CPUs meanwhile" in busy.sources[key]
    assert "read low" in busy_warning(busy)
    # the warning starts at a quarter of the CPUs; without a figure (off Linux) there is none
    assert "read low" in busy_warning(dataclasses.replace(busy, busy_cpus=0.25 * busy.cores))
    assert busy_warning(dataclasses.replace(busy, busy_cpus=0.24 * busy.cores)) is None
    assert busy_warning(dataclasses.replace(busy, busy_cpus=None)) is None


# Measures host.OtherLoad, the probe's load figure, over a window while a spinner runs: the
# measuring process is pinned to one CPU, the spinner to the same CPU or another. Besides the
# figure it prints what the kernel saw: the spinner's CPU time (/proc/PID/stat) and how busy the
# measuring CPU was (/proc/stat), so a test can bound the figure whatever else the machine runs.
PINNED_LOAD = """
import json, os, subprocess, sys, time
from edgekd import host

def busy(cpu):  # ticks the CPU was neither idle nor waiting for I/O (/proc/stat fields 4 and 5)
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name == f"cpu{cpu}":
                ticks = list(map(int, ticks[:8]))
                return sum(ticks) - ticks[3] - ticks[4]

def used(pid):  # user + system ticks of a process (/proc/PID/stat fields 14 and 15)
    with open(f"/proc/{pid}/stat") as f:
        return sum(map(int, f.read().rsplit(")", 1)[1].split()[11:13]))

probe_cpu, spinner_cpu, window = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
os.sched_setaffinity(0, {probe_cpu})
spin = f"import os; os.sched_setaffinity(0, {{{spinner_cpu}}})\\nwhile True: pass"
spinner = subprocess.Popen([sys.executable, "-c", spin])
time.sleep(0.2)
tick = os.sysconf("SC_CLK_TCK")
busy0, own0, wall0 = busy(probe_cpu), used(os.getpid()), time.perf_counter()
with host.OtherLoad() as others:
    spun0 = used(spinner.pid)
    time.sleep(window)
    spun = used(spinner.pid) - spun0
busy1, own1, wall1 = busy(probe_cpu), used(os.getpid()), time.perf_counter()
spinner.kill()
print(json.dumps({"others": others.cpus, "spinner_s": spun / tick, "probe_cpu_busy_s": (busy1 - busy0) / tick,
                  "own_s": (own1 - own0) / tick, "wall_s": wall1 - wall0}))
"""
WINDOW = 0.5
TICKS = 0.05  # seconds: /proc counts whole ticks, read at slightly different moments


def _pinned_load(probe_cpu: int, spinner_cpu: int) -> dict:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PINNED_LOAD, str(probe_cpu), str(spinner_cpu), str(WINDOW)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_load_beside_the_probe_counts():
    # Other processes only add to the busy time of the probe's CPU, so the figure is at least
    # the spinner's share, however busy or idle the machine is.
    cpu = min(os.sched_getaffinity(0))
    m = _pinned_load(cpu, cpu)
    assert m["others"] >= (m["spinner_s"] - TICKS) / m["wall_s"] - 0.01, m


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_load_on_cpus_the_probe_cannot_use_does_not_count():
    # The figure is at most what kept the probe's own CPU busy, less the probe itself: the spinner
    # on the other CPU (about WINDOW seconds of work, or its share of a busy CPU) is not in it.
    probe_cpu, spinner_cpu = sorted(os.sched_getaffinity(0))[:2]
    m = _pinned_load(probe_cpu, spinner_cpu)
    assert m["others"] <= (m["probe_cpu_busy_s"] - m["own_s"] + TICKS) / WINDOW + 0.01, m


def test_json_written_by_edgekd_is_strict(tmp_path):
    """A non-finite number is refused where it is written: no file or --json output holds
    NaN or Infinity, which JSON readers other than Python's reject."""
    from edgekd.runs import write_json

    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"p50_ms": float("inf")})
    assert not (tmp_path / "x.json").exists() and not list(tmp_path.iterdir())  # nothing half-written


# A document a source names by file: "notes.md", "docs/x.rst", "owner/repo path/README.md", or a URL.
CITED_FILE = re.compile(r"[\w./%-]*[\w-]\.(?:md|rst|txt|pdf|toml|json|yaml|yml|csv|html)\b")
WEB_ADDRESS = re.compile(r"^[\w-]+(\.[\w-]+)+/")  # "example.com/page.html", without its scheme
REPOSITORY = re.compile(r"^[\w.-]+/[\w.-]+$")  # "Tencent/ncnn": the word before a path in another repository


def files_not_found(text: str, root: Path) -> list[str]:
    """The files a source names that a reader cannot follow: not in a URL, not a path in a
    named repository (`owner/name path`), and not in this repository."""
    missing = []
    for match in CITED_FILE.finditer(text):
        word_start = max(text.rfind(" ", 0, match.start()), text.rfind("(", 0, match.start())) + 1
        word = text[word_start:match.end()]
        if "://" in word or WEB_ADDRESS.match(word):
            continue
        before = text[:word_start].split()
        if "/" in match.group() and before and REPOSITORY.match(before[-1].strip("(,;")):
            continue
        if not (root / match.group()).exists():
            missing.append(match.group())
    return missing


def test_files_not_found_catches_a_missing_note(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "here.md").write_text("x")
    assert files_not_found("as recorded in targets-research.md", tmp_path) == ["targets-research.md"]
    assert files_not_found("see docs/guide.rst", tmp_path) == ["docs/guide.rst"]
    assert files_not_found("notes/here.md; Tencent/ncnn benchmark/README.md; https://a.org/b/c.html; a.org/d.html",
                           tmp_path) == []


@pytest.mark.parametrize("target", [t for t in list_targets() if not t.probed], ids=lambda t: t.name)
def test_every_source_names_only_files_a_reader_can_find(target):
    root = builtin_dir().parent
    for key, text in target.sources.items():
        assert not files_not_found(text, root), f"{target.name}: [sources].{key} names {files_not_found(text, root)}"
