"""End to end: the connector subprocess drains a backlog against the sandbox with no latency and no limits.

The measured window runs from the first observation with a finished record to the observation where the
whole backlog is finished, so process start-up, consumer-group join and the first fetch are not in it. CPU
seconds come from ``/proc`` samples at the same two moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.connector_proc import ConnectorProcess, processed_by_outcome
from bench.procstats import ProcessSampler


@dataclass
class DrainResult:
    records: int
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    rss_mb_samples: list[float]
    outcomes: dict[str, int]
    requests_2xx: int
    requests_other: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_s_per_1000(self) -> float:
        return self.cpu_s / self.records * 1000 if self.records else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests_2xx / self.seconds if self.seconds > 0 else 0.0


def api_request_counts(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> tuple[int, int]:
    ok = other = 0
    for labels, value in metrics.get("attentive_connector_api_requests", {}).items():
        if dict(labels).get("status_class") == "2xx":
            ok += int(value)
        else:
            other += int(value)
    return ok, other


def drain(
    cp: ConnectorProcess, total: int, *, timeout_s: float, log: Callable[[str], None] | None = None
) -> DrainResult:
    """Wait for ``total`` finished records on a started connector and measure the drain."""
    end = cp.wait_processed(total, timeout_s=timeout_s, log=log)
    start = cp.first_progress()
    assert start is not None
    assert cp.sampler is not None
    ok, other = api_request_counts(cp.last_metrics)
    records = end.processed - start.processed
    return DrainResult(
        records=records,
        seconds=end.t - start.t,
        cpu_s=end.cpu_s - start.cpu_s,
        peak_rss_mb=0.0,  # filled in once the process has exited (VmHWM covers its whole life)
        rss_mb_samples=[],
        outcomes=processed_by_outcome(cp.last_metrics),
        requests_2xx=ok,
        requests_other=other,
    )


def finish(result: DrainResult, sampler: ProcessSampler | None) -> DrainResult:
    """Fill in memory figures from the sampler after the process stopped."""
    if sampler is not None:
        result.peak_rss_mb = sampler.peak_rss_mb
        samples = [s.rss_kb / 1024 for s in sampler.samples if s.rss_kb]
        # A short series (≤ 40 points) to show RSS stayed bounded throughout, not only its peak.
        step = max(1, -(-len(samples) // 40))
        result.rss_mb_samples = [round(x, 1) for x in samples[::step]]
    return result
