"""Latency on a target device, predicted from this host's measurement of the same artifact.

Method (roofline ratio, calibrated on the host):
  overhead(host)   = the runtime's cost per call and per operator, measured on the host
  (edgekd.bench.overhead) and counted over this graph's operators; when it is known, it is
  taken out of the measurement first and scaled to the target by the clock ratio alone;
  roofline(device) = sum over operators of max(flops / peak, bytes / bandwidth), with the
  peak scaled to the threads used;
  efficiency       = roofline(host) / (measured(host) - overhead(host)): how far the host
  runs from its own roofline on this very model (cache effects, kernel quality);
  predicted        = overhead(host) x clock ratio + roofline(target) / efficiency, given as
  an interval [predicted x LOW, predicted x HIGH].
  floor            = max(total flops / peak, weight bytes / bandwidth) at the precision
  used, reported beside it but not enforced: it counts a convolution's direct FLOPs at
  fp32, and ncnn's Winograd kernels and fp16 arithmetic beat it on 15 of the 32 published
  latencies. Clamped to it, the interval held 44% of them; unclamped, 75% (in sample).

LOW and HIGH are the 10th and 90th percentiles of published/predicted over the published
reference latencies (benchmarks/predictor_error.py; figures in benchmarks/RESULTS.md, where the
interval's coverage is measured out of sample: each board predicted with the interval drawn
from the other boards' errors). Those references are ImageNet-size models, so a prediction
says which size class it falls in and whether that class was validated at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.bench.graph import OpCost
from edgekd.bench.overhead import Overhead
from edgekd.runtimes import PRECISIONS

METHOD = "roofline ratio calibrated by the host's measurement of the same artifact"
# p10 0.57 and p90 2.50 of published/predicted over 32 published board latencies in one run
# of benchmarks/predictor_error.py (the next run read 0.59 and 3.00: the host measurements
# move). Out of sample (one board held out) an interval drawn this way held 59-66% of the
# held-out figures, not 80% (benchmarks/RESULTS.md).
LOW, HIGH = 0.55, 2.5
# Size classes by multiply-accumulates per inference (upper bounds); the published references
# (MobileNetV2 300 M, ResNet-18 1.8 G at 224x224) validate only the largest. Below it, a
# dispatch-bound student's time is mostly per-call and per-operator overhead, which the
# roofline ratio scales like compute: no published figure checks that.
SIZE_CLASSES = (("tiny", 1e6), ("small", 100e6), ("large", float("inf")))
VALIDATED = {"large"}


def size_class(macs: float) -> str:
    return next(name for name, below in SIZE_CLASSES if macs < below)


@dataclass(frozen=True)
class Machine:
    """What the roofline needs of a device: all-core peak, bandwidth, cores, threads used."""

    peak_gflops: float
    bandwidth_gbs: float
    cores: int
    threads: int
    clock_ghz: float | None = None  # scales the per-call overhead; None: taken as the host's

    @classmethod
    def of(cls, target, threads: int) -> "Machine":
        """A device profile (edgekd.targets.Target, the probed host included) running `threads` threads."""
        return cls(target.peak_gflops_fp32, target.memory_bandwidth_gbs, target.cores, threads, target.clock_ghz)

    def roofline_s(self, costs: list[OpCost]) -> float:
        peak = self.peak_gflops * 1e9 * min(self.threads, self.cores) / self.cores
        bw = self.bandwidth_gbs * 1e9
        return sum(max(c.flops / peak, c.bytes / bw) for c in costs)

    def floor_s(self, costs: list[OpCost], weight_bytes: float, precision: str) -> float:
        peak = self.peak_gflops * 1e9 * min(self.threads, self.cores) / self.cores
        # lower-precision arithmetic can beat the fp32 compute floor by its precision's bound at most
        speedup = PRECISIONS[precision].max_speedup if precision in PRECISIONS else 1.0
        return max(sum(c.flops for c in costs) / (peak * speedup), weight_bytes / speedup / (self.bandwidth_gbs * 1e9))


def predict_ms(measured_host_ms: float, costs: list[OpCost], weight_bytes: float, precision: str,
               host: Machine, target: Machine, overhead: Overhead | None = None) -> dict:
    # the fixed part can be no more than the whole; what is left runs at the host's efficiency
    fixed_ms = min(overhead.ms([c.op for c in costs]), 0.95 * measured_host_ms) if overhead else 0.0
    clock = host.clock_ghz / target.clock_ghz if host.clock_ghz and target.clock_ghz else 1.0
    host_roof = host.roofline_s(costs)
    target_roof = target.roofline_s(costs)
    efficiency = host_roof * 1e3 / (measured_host_ms - fixed_ms)
    floor_ms = target.floor_s(costs, weight_bytes, precision) * 1e3
    point = fixed_ms * clock + target_roof * 1e3 / efficiency
    size = size_class(sum(c.flops for c in costs) / 2)
    return {"p50_ms": point, "low_ms": point * LOW, "high_ms": point * HIGH,
            "floor_ms": floor_ms, "host_roofline_fraction": efficiency, "method": METHOD,
            "interval": f"x{LOW}-x{HIGH} (10th-90th percentile of the error on published latencies)",
            "size_class": size, "validated": size in VALIDATED,
            "overhead_ms": fixed_ms if overhead else None, "clock_ratio": clock if overhead else None}


def host_efficiency(measured_ms: float, costs: list[OpCost], weight_bytes: float, precision: str,
                    host: Machine) -> float:
    """The artifact's efficiency against its floor on the host: floor / measured (1.0 = at the floor)."""
    return host.floor_s(costs, weight_bytes, precision) * 1e3 / measured_ms
