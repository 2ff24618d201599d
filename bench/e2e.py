"""End to end: the connector subprocess drains a backlog against the sandbox with no latency and no limits.

The measured window runs from the first observation with a finished record to the observation where the
whole backlog is finished (or the window cap is reached), so process start-up, consumer-group join and the
first fetch are not in it. CPU seconds come from ``/proc`` samples at the same two moments. One connector
process can drain several backlogs in turn (``above`` = records it had finished before this one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.connector_proc import ConnectorProcess, processed_by_outcome


@dataclass
class DrainResult:
    target: int  # records in the backlog
    finished: int  # records finished by the end of the window
    records: int  # records finished inside the measured window
    seconds: float
    cpu_s: float
    peak_rss_mb: float
    rss_mb_samples: list[float]
    outcomes: dict[str, int]
    requests_2xx: int
    requests_other: int
    window_requests: int = 0  # 2xx answers inside the measured window

    @property
    def complete(self) -> bool:
        return self.finished >= self.target

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        """Attentive requests answered 2xx per second over the drain (a record makes 1..n calls)."""
        return self.window_requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_s_per_1000(self) -> float:
        return self.cpu_s / self.records * 1000 if self.records else 0.0

    def details(self) -> dict[str, object]:
        return {
            "records": self.target,
            "finished": self.finished,
            "drained": self.complete,
            "window_records": self.records,
            "window_s": round(self.seconds, 2),
            "records_per_s": round(self.records_per_s, 1),
            "requests_per_s": round(self.requests_per_s, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_per_1000": round(self.cpu_s_per_1000, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "outcomes": self.outcomes,
            "requests_2xx": self.requests_2xx,
            "requests_other": self.requests_other,
            "rss_mb_samples": self.rss_mb_samples,
        }


def api_request_counts(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> tuple[int, int]:
    ok = other = 0
    for labels, value in metrics.get("attentive_connector_api_requests", {}).items():
        if dict(labels).get("status_class") == "2xx":
            ok += int(value)
        else:
            other += int(value)
    return ok, other


def drain(
    cp: ConnectorProcess,
    count: int,
    *,
    above: int = 0,
    window_cap_s: float | None = None,
    timeout_s: float = 120.0,
    log: Callable[[str], None] | None = None,
) -> DrainResult:
    """Wait for ``count`` more finished records on a started connector and measure the drain.

    Memory: the high-water mark so far (VmHWM never goes down, so a later drain's peak includes
    earlier ones) and the RSS samples taken during this drain.
    """
    assert cp.sampler is not None
    t_begin = cp.sampler.samples[-1].t if cp.sampler.samples else 0.0
    # Counters are per process: subtract what earlier drains on the same process left in them.
    outcomes_before = processed_by_outcome(cp.last_metrics)
    ok_before, other_before = api_request_counts(cp.last_metrics)
    first, end = cp.wait_processed(
        above + count, above=above, window_cap_s=window_cap_s, timeout_s=timeout_s, log=log
    )
    assert first is not None
    if log is not None and above == 0:
        log(f"[bench]   first record finished {first.t - cp.started_at:.1f}s after the connector started")
    cp.sampler.sample()
    ok, other = api_request_counts(cp.last_metrics)
    samples = [s.rss_kb / 1024 for s in cp.sampler.samples if s.t >= t_begin and s.rss_kb]
    step = max(1, -(-len(samples) // 40))  # a short series (≤ 40 points): RSS throughout, not only its peak
    return DrainResult(
        target=count,
        finished=end.processed - above,
        records=end.processed - first.processed,
        seconds=end.t - first.t,
        cpu_s=end.cpu_s - first.cpu_s,
        peak_rss_mb=cp.sampler.peak_rss_mb,
        rss_mb_samples=[round(x, 1) for x in samples[::step]],
        outcomes={
            k: n - outcomes_before.get(k, 0)
            for k, n in processed_by_outcome(cp.last_metrics).items()
            if n - outcomes_before.get(k, 0)
        },
        requests_2xx=ok - ok_before,
        requests_other=other - other_before,
        window_requests=end.requests_2xx - first.requests_2xx,
    )
