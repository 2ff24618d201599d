"""How much work each benchmark phase does: the full run (``make bench``) and ``--quick`` (CI).

The caps bound each measured window so a slow connector cannot blow the time budget (10 minutes full,
1 minute quick); a drain that hits its cap is reported as not drained, never as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does, and the caps that keep a slow connector inside the time budget."""

    pool_per_topic: int
    e2e_records: int
    e2e_cap_s: float  # measured window at most this long
    bare_http_s: float
    naive_records: int
    naive_max_s: float
    backlog_records: int
    backlog_cap_s: float
    shaped_busy_s: float  # each endpoint has about limit × this many requests to make
    latency_s: float  # records produced at half the limits for this long
    transports: bool  # also measure httpx's own transport and raw aiohttp (for the README's choice)


FULL = Sizes(
    pool_per_topic=2000,
    e2e_records=100_000,
    e2e_cap_s=45,
    bare_http_s=10,
    naive_records=3000,
    naive_max_s=15,
    backlog_records=1_000_000,
    backlog_cap_s=240,
    shaped_busy_s=20,
    latency_s=30,
    transports=True,
)
QUICK = Sizes(
    pool_per_topic=200,
    e2e_records=3000,
    e2e_cap_s=4,
    bare_http_s=2,
    naive_records=300,
    naive_max_s=2,
    backlog_records=5000,
    backlog_cap_s=4,
    shaped_busy_s=3,
    latency_s=3,
    transports=False,
)
# If the end-to-end rate says the full backlog cannot drain within its cap, the backlog is this size
# instead (and the JSON says so).
FALLBACK_BACKLOG = 200_000
