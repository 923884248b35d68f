"""Latency on a target device, predicted from this host's measurement of the same artifact.

Method (roofline ratio, calibrated on the host):
  roofline(device) = sum over operators of max(flops / peak, bytes / bandwidth), with the
  peak scaled to the threads used;
  efficiency       = roofline(host) / measured(host): how far the host runs from its own
  roofline on this very model (dispatch overhead, cache effects, kernel quality);
  predicted        = roofline(target) / efficiency, i.e. measured(host) x roofline ratio,
  given as an interval [predicted x LOW, predicted x HIGH] and never below the target's
  physical floor: max(total flops / peak, weight bytes / bandwidth) at the precision used.

LOW and HIGH are the 10th and 90th percentiles of measured/predicted over the published
reference latencies (benchmarks/predictor_error.py; figures in benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.bench.graph import OpCost
from edgekd.runtimes import PRECISIONS

METHOD = "roofline ratio calibrated by the host's measurement of the same artifact"
# p10 0.42 and p90 2.33 of published/predicted over 32 published board latencies
# (benchmarks/RESULTS.md, predictor_error), rounded outward. Validated on ImageNet-size CNNs
# only: for tiny, dispatch-bound students the same ratio is applied but not validated.
LOW, HIGH = 0.4, 2.4


@dataclass(frozen=True)
class Machine:
    """What the roofline needs of a device: all-core peak, bandwidth, cores, threads used."""

    peak_gflops: float
    bandwidth_gbs: float
    cores: int
    threads: int

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
               host: Machine, target: Machine) -> dict:
    host_roof = host.roofline_s(costs)
    target_roof = target.roofline_s(costs)
    efficiency = host_roof * 1e3 / measured_host_ms
    floor_ms = target.floor_s(costs, weight_bytes, precision) * 1e3
    point = max(target_roof * 1e3 / efficiency, floor_ms)
    return {"p50_ms": point, "low_ms": max(point * LOW, floor_ms), "high_ms": max(point * HIGH, floor_ms),
            "floor_ms": floor_ms, "host_roofline_fraction": efficiency, "method": METHOD,
            "interval": f"x{LOW}-x{HIGH} (10th-90th percentile of validated error)"}


def host_efficiency(measured_ms: float, costs: list[OpCost], weight_bytes: float, precision: str,
                    host: Machine) -> float:
    """The artifact's efficiency against its floor on the host: floor / measured (1.0 = at the floor)."""
    return host.floor_s(costs, weight_bytes, precision) * 1e3 / measured_ms
