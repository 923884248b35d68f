"""What machine and which library versions produced a number."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

from edgekd import runtimes


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") or line.startswith("Features"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OtherLoad:
    """CPUs that other processes kept busy while a block ran: the busy time of the CPUs this
    process may use (/proc/stat, steal included for VMs) minus its own. None off Linux."""

    def __enter__(self):
        self.cpus: float | None = None
        self._start = _busy_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        (machine, own), wall = _busy_seconds(), time.perf_counter()
        (machine0, own0), wall0 = self._start
        if machine is not None and machine0 is not None and wall > wall0:
            self.cpus = round(max(0.0, (machine - machine0) - (own - own0)) / (wall - wall0), 2)


def _busy_seconds() -> tuple[float | None, float | None]:
    tick = os.sysconf("SC_CLK_TCK")
    try:
        ours = {f"cpu{n}" for n in os.sched_getaffinity(0)}  # load on other CPUs does not slow us
        busy = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *ticks = line.split()
                if name in ours:
                    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                    busy += user + nice + system + irq + softirq + steal
        with open("/proc/self/stat") as f:
            utime, stime = map(int, f.read().rsplit(")", 1)[1].split()[11:13])  # fields 14 and 15
    except (OSError, ValueError, AttributeError):
        return None, None
    return busy / tick, (utime + stime) / tick


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in dict.fromkeys(("edgekd", *runtimes.versions(), "numpy")):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe() -> dict:
    return {"cpu": cpu_model(), "cores": cores(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}", "node": platform.node()}
