"""Device profiles: what a target CPU can do, with a source for every number.

Built-in profiles are the TOML files in the repository's top-level targets/ folder, one per
device, named after the file; a user may pass a path to a profile of their own. "host" is this
machine, probed and measured at run time. Every numeric field must name its source in
[sources], so a prediction never rests on a number nobody can trace.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import re
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from edgekd import host, runtimes, tomlfile
from edgekd.errors import UserError

RUNTIMES = tuple(runtimes.RUNTIMES)
HOST = "host"
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"  # a target's name and aliases name its bench file


class Field(NamedTuple):
    kind: str        # key into CHECKS
    expect: str      # completes "<field> must be ..." in error messages
    required: bool = True


FIELDS = {
    "name": Field("text", "a non-empty string"),
    "description": Field("text", "a non-empty string"),
    "aliases": Field("names", "a list of names", required=False),
    "cpu": Field("text", "a non-empty string"),
    "cores": Field("int", "a whole number of cores"),
    "clock_ghz": Field("float", "a number in GHz"),
    "isa": Field("text", "a non-empty string"),
    "simd": Field("names", "a list of SIMD extension names"),
    "peak_gflops_fp32": Field("float", "a number in GFLOP/s"),
    "memory_bandwidth_gbs": Field("float", "a number in GB/s"),
    "ram_gb": Field("float", "a number in GB"),
    "runtimes": Field("names", f"a list drawn from {', '.join(RUNTIMES)}"),
    "threads": Field("int", "a whole number of threads", required=False),
    "latency_budget_ms": Field("float", "a number in ms", required=False),
    "reference_latency_ms": Field("latencies", "a table of latencies in ms", required=False),
    "sources": Field("sources", "a table of field = \"source text\""),
}
NUMERIC = {"int", "float", "latencies"}  # kinds that need a [sources] entry and must be > 0
# What a CPU board can be. Outside these a number is a typo, and a prediction scaled by it
# would overflow to infinity (a tiny peak) or divide by nothing.
RANGES = {"cores": (1, 4096), "threads": (1, 4096), "clock_ghz": (0.01, 10.0), "peak_gflops_fp32": (0.001, 1e7),
          "memory_bandwidth_gbs": (0.001, 1e5), "ram_gb": (0.001, 1e5), "latency_budget_ms": (1e-6, 1e9),
          "reference_latency_ms": (1e-6, 1e9)}
REQUIREMENTS = {"latency_budget_ms"}  # what the user asks of the board, not a fact about it: no source needed


def _number(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # TOML allows nan and inf
    return float(v) if ok else None


def _strings(items: Any) -> bool:
    return all(isinstance(x, str) and x.strip() for x in items)


# Each check returns the cleaned value, or None when the value has the wrong type or unit.
CHECKS: dict[str, Callable[[Any], Any]] = {
    "text": lambda v: v if isinstance(v, str) and v.strip() else None,
    "int": lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None,
    "float": _number,
    "names": lambda v: tuple(v) if isinstance(v, list) and _strings(v) else None,
    "latencies": lambda v: ({k: _number(x) for k, x in v.items()}
                            if isinstance(v, dict) and all(_number(x) is not None for x in v.values()) else None),
    "sources": lambda v: dict(v) if isinstance(v, dict) and _strings(v.values()) else None,
}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    cpu: str
    cores: int
    clock_ghz: float | None  # None only for a host whose clock cannot be read
    isa: str
    simd: tuple[str, ...]
    peak_gflops_fp32: float
    memory_bandwidth_gbs: float
    ram_gb: float
    runtimes: tuple[str, ...]
    threads: int
    latency_budget_ms: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    reference_latency_ms: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    probed: bool = False
    busy_cpus: float | None = None  # probed host only: CPUs other processes used while it was probed
    path: str | None = None

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def builtin_dir() -> Path:
    """The checkout's targets/ (editable installs), else the copy a wheel installs under share/."""
    checkout = Path(__file__).resolve().parent.parent / "targets"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "edgekd" / "targets"


def list_targets() -> list[Target]:
    """Every built-in profile, sorted by name, then the probed host."""
    unique = {t.name: t for t in _builtins().values()}
    return [unique[n] for n in sorted(unique)] + [probe_host()]


def load_target(spec: str) -> Target:
    """A built-in name or alias, "host", or the path of a .toml profile."""
    if spec == HOST:
        return probe_host()
    if spec.endswith(".toml") or "/" in spec or os.sep in spec:
        target = _read(Path(spec).expanduser(), builtin=False)
        if target.name == HOST or target.name in _builtins():  # results are filed under the name
            raise UserError(f"{spec}: name {target.name!r} belongs to a built-in target; give your profile its own "
                            "name, or its results would overwrite the built-in's")
        return target
    table = _builtins()
    if spec in table:
        return table[spec]
    names = sorted({t.name for t in table.values()}) + [HOST]
    aliases = ", ".join(f"{a} = {t.name}" for a, t in sorted(table.items()) if a != t.name)
    raise UserError(f"unknown target {spec!r}; known targets: {', '.join(names)} (aliases: {aliases or 'none'})")


def _builtins() -> dict[str, Target]:
    """Built-in profiles by name and by alias. Not cached: seven small files read in
    milliseconds, and an edit to targets/ shows up at once."""
    table: dict[str, Target] = {}
    for path in sorted(builtin_dir().glob("*.toml")):
        target = _read(path, builtin=True)
        for key in (target.name, *target.aliases):
            if key in table or key == HOST:
                owner = table[key].path if key in table else "the probed host"
                what = "name" if key == target.name else "alias"
                raise UserError(f"{path}: {what} {key!r} is already used by {owner}")
            table[key] = target
    return table


def _read(path: Path, builtin: bool) -> Target:
    try:
        raw = tomlfile.loads(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise UserError(f"target file not found: {path}") from None
    except OSError as e:
        raise UserError(f"cannot read target file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: invalid TOML ({e})") from None
    values = _validate(raw, str(path))
    if builtin and values["name"] != path.stem:  # the file name is how users find a built-in
        raise UserError(f"{path}: name {values['name']!r} must equal the file name {path.stem!r}")
    if "threads" not in values:  # default: one per core, sourced like any other number
        values["threads"] = values["cores"]
        values["sources"]["threads"] = "default: one thread per core"
    return Target(**values, path=str(path.resolve()))


def _validate(raw: dict, where: str) -> dict:
    """The profile's values, cleaned, or a UserError naming the first bad field."""
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r} (valid fields: {', '.join(FIELDS)})")
    missing = [k for k, f in FIELDS.items() if f.required and k not in raw]
    if missing:
        raise UserError(f"{where}: missing required field {missing[0]!r}")
    values: dict[str, Any] = {}
    for key in sorted(raw, key=lambda k: k != "sources"):  # sources first: the numbers are checked against it
        spec, value = FIELDS[key], raw[key]
        clean = CHECKS[spec.kind](value)
        if clean is None and spec.kind == "sources" and isinstance(value, dict):  # name the bad entry, not the table
            key, value = next((f"[sources].{k}", v) for k, v in value.items() if not (isinstance(v, str) and v.strip()))
            raise UserError(f"{where}: {key} must be text saying where the number comes from, not {value!r}")
        if clean is None:
            raise UserError(f"{where}: {key} must be {spec.expect}, not {value!r}")
        if spec.kind in NUMERIC:
            for v in clean.values() if isinstance(clean, dict) else [clean]:
                if v <= 0:
                    raise UserError(f"{where}: {key} must be positive, not {v!r}")
                low, high = RANGES[key]
                if not low <= v <= high:
                    raise UserError(f"{where}: {key} must be between {low:g} and {high:g}, not {v!r}")
            if key not in values["sources"] and key not in REQUIREMENTS:
                raise UserError(f"{where}: {key} has no entry in [sources]; say where the number comes from")
        values[key] = clean
    for name in (values["name"], *values.get("aliases", ())):  # results are filed under the name
        if not re.fullmatch(NAME, name):
            what = "name" if name == values["name"] else "alias"
            raise UserError(f"{where}: {what} {name!r} must be letters, digits, '.', '_' or '-' (it names a file)")
    stray = sorted(set(values["sources"]) - set(FIELDS))
    if stray:
        raise UserError(f"{where}: [sources] has an entry for unknown field {stray[0]!r}")
    bad = [r for r in values["runtimes"] if r not in RUNTIMES]
    if bad:
        raise UserError(f"{where}: runtimes has unknown runtime {bad[0]!r} (known: {', '.join(RUNTIMES)})")
    return values


# /proc/cpuinfo flag -> the name profiles use (x86 "flags", Arm "Features")
SIMD_FLAGS = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni",
              "avx512_bf16": "avx512_bf16", "avx_vnni": "avx_vnni", "amx_tile": "amx",
              "neon": "neon", "asimd": "neon", "asimdhp": "fp16", "asimddp": "dotprod",
              "i8mm": "i8mm", "bf16": "bf16", "sve": "sve"}


@functools.cache
def probe_host() -> Target:
    """This machine: read from the OS, then peak FLOP/s and bandwidth measured (< 2 s)."""
    import numpy as np

    cores = host.cores()
    ram_gb = _meminfo_gb()
    with host.OtherLoad() as others:  # a busy machine reads slow: say so beside the numbers
        gflops = _measure_sgemm(np, cores)
        gbs = _measure_copy(np, ram_gb)
    clock = _clock_ghz()
    installed = tuple(name for name, r in runtimes.RUNTIMES.items() if r.installed())
    by = "measured on this host by edgekd.targets.probe_host"
    sources = {
        "cores": f"{by}: CPUs this process may run on (os.sched_getaffinity)",
        "peak_gflops_fp32": f"{by}: best float32 1024x1024 matmul (numpy BLAS, {cores} threads); "
                            "achieved, so below the data-sheet peak",
        "memory_bandwidth_gbs": f"{by}: best numpy copy of a large float32 array, read + write bytes, one thread",
        "ram_gb": f"{by}: MemTotal in /proc/meminfo",
        "threads": f"{by}: one thread per available CPU",
    }
    if others.cpus is not None:
        for key in ("peak_gflops_fp32", "memory_bandwidth_gbs"):
            sources[key] += f"; other processes used {others.cpus:g} of {cores} CPUs meanwhile"
    if clock:
        sources["clock_ghz"] = f"{by}: cpufreq cpuinfo_max_freq or 'cpu MHz' in /proc/cpuinfo"
    cpu = host.cpu_model()
    simd = tuple(sorted({SIMD_FLAGS[f] for f in host.cpu_flags() & SIMD_FLAGS.keys()}))
    return Target(name=HOST, description=f"this machine ({cpu})", cpu=cpu, cores=cores, clock_ghz=clock,
                  isa=platform.machine(), simd=simd,
                  peak_gflops_fp32=gflops, memory_bandwidth_gbs=gbs, ram_gb=ram_gb, runtimes=installed,
                  threads=cores, sources=sources, probed=True, busy_cpus=others.cpus)


def busy_warning(t: Target) -> str | None:
    """A warning when other processes took a quarter or more of the CPUs during the probe."""
    if t.busy_cpus is not None and t.busy_cpus >= 0.25 * t.cores:
        return (f"other processes used {t.busy_cpus:g} of {t.cores} CPUs while this host was probed; its FLOP/s "
                "and bandwidth, and the predictions scaled from them, read low: rerun on a quiet machine")
    return None


def _best(fn: Callable[[], None], budget_s: float) -> float:
    """Shortest of repeated timed calls after one warm-up, until the budget is spent: the
    best run is the one least disturbed by other processes, and a slow board stops early."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < budget_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def _measure_sgemm(np, cores: int) -> float:
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    n = 1024
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(limits=cores, user_api="blas"):  # every core, whatever OMP_NUM_THREADS says
        seconds = _best(lambda: np.matmul(a, b, out=out), budget_s=0.4)
    return round(2 * n**3 / seconds / 1e9, 1)


def _measure_copy(np, ram_gb: float) -> float:
    # Larger than any last-level cache, yet small enough for a 512 MB board.
    nbytes = int(min(128 * 2**20, ram_gb * 2**30 / 16))
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    seconds = _best(lambda: np.copyto(dst, src), budget_s=0.25)
    return round(2 * src.nbytes / seconds / 1e9, 1)


def _meminfo_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def _clock_ghz() -> float | None:
    try:
        return round(int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6, 2)
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return round(float(line.split(":", 1)[1]) / 1e3, 2)
    except (OSError, ValueError):
        pass
    return None
