"""Prometheus metrics: every metric the connector exports, on an injectable registry.

Labels never carry per-record values (no phone, email, order id, offset): only topic, partition, rule,
endpoint, outcome, status class and fixed reason names. Tests pass a fresh ``CollectorRegistry``.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from connector import __version__

PREFIX = "attentive_connector"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 43200.0)


class Metrics:
    """All connector metrics, registered on ``registry`` (a new one when not given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = PREFIX
        self.records_consumed = Counter(
            f"{p}_records_consumed", "Records read from Kafka.", ["topic"], registry=r
        )
        self.records_processed = Counter(
            f"{p}_records_processed",
            "Records finished, by rule and outcome (delivered, skipped, stale, dead_lettered).",
            ["topic", "rule", "outcome"],
            registry=r,
        )
        self.api_requests = Counter(
            f"{p}_api_requests",
            "Attentive API requests by endpoint and status class (2xx, 4xx, 5xx, 401, 403, 429, network).",
            ["endpoint", "status_class"],
            registry=r,
        )
        self.api_retries = Counter(
            f"{p}_api_retries", "Attentive calls retried, by reason.", ["endpoint", "reason"], registry=r
        )
        self.decode_errors = Counter(
            f"{p}_decode_errors", "Records that could not be decoded.", ["topic", "reason"], registry=r
        )
        self.dlq_records = Counter(
            f"{p}_dlq_records", "Records written to the dead-letter topic.", ["topic", "reason"], registry=r
        )
        self.dlq_write_errors = Counter(
            f"{p}_dlq_write_errors",
            "Failed dead-letter writes (each is retried; the record's partition stalls until it succeeds).",
            ["topic"],
            registry=r,
        )
        self.rebalances = Counter(
            f"{p}_rebalances", "Partition assignment changes (assigned, revoked, lost).", ["kind"], registry=r
        )
        self.commits = Counter(
            f"{p}_commits", "Offset commits by result (ok, failed).", ["result"], registry=r
        )
        self.api_request_duration = Histogram(
            f"{p}_api_request_duration_seconds",
            "Time for one Attentive request, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_lag = Histogram(
            f"{p}_delivery_lag_seconds",
            "From the record's Kafka timestamp to Attentive's answer.",
            ["topic"],
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{p}_consumer_lag",
            "High watermark minus committed position.",
            ["topic", "partition"],
            registry=r,
        )
        self.in_flight_requests = Gauge(
            f"{p}_in_flight_requests", "Attentive requests in flight.", registry=r
        )
        self.buffered_records = Gauge(
            f"{p}_buffered_records", "Records consumed and not yet finished.", registry=r
        )
        self.paused_partitions = Gauge(
            f"{p}_paused_partitions", "Partitions paused for backpressure or auth failure.", registry=r
        )
        self.commit_metadata_stored = Gauge(
            f"{p}_commit_metadata_stored",
            "0 when a read-back showed the broker drops offset commit metadata (records finished above the "
            "committed position are then redelivered after a restart or rebalance), else 1.",
            registry=r,
        )
        self.commit_metadata_stored.set(1)
        self.last_poll_timestamp = Gauge(
            f"{p}_last_poll_timestamp_seconds", "Unix time of the last Kafka poll.", registry=r
        )
        self.rate_limit_remaining = Gauge(
            f"{p}_rate_limit_remaining",
            "Last x-ratelimit-remaining reported by Attentive, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.circuit_open = Gauge(
            f"{p}_circuit_open", "1 while an endpoint's circuit is open (outage).", ["endpoint"], registry=r
        )
        self.ready = Gauge(f"{p}_ready", "1 when the connector is ready (see /readyz).", registry=r)
        self.build_info = Info(f"{p}_build", "Connector version.", registry=r)
        self.build_info.info({"version": __version__})
        # process_resident_memory_bytes, process_cpu_seconds_total, ... for the dashboard's runtime row
        # (read from /proc; exports nothing on platforms without it).
        ProcessCollector(registry=r)


_Child_co = TypeVar("_Child_co", covariant=True)


class _Labelled(Protocol[_Child_co]):
    def labels(self, *values: str) -> _Child_co: ...


class Children(Generic[_Child_co]):
    """``metric.labels(*values)`` remembered per label values, for metrics updated once per record.

    ``labels()`` validates the values, takes the metric's lock and looks the child up on every call; a hot
    path that updates the same few children thousands of times a second keeps them here instead. Only for
    metrics whose children are never removed (counters and histograms by topic, rule, outcome).
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _Labelled[_Child_co]) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], _Child_co] = {}

    def __call__(self, *values: str) -> _Child_co:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


# Statuses that get a class of their own: rate limiting, and auth failures (alerted on separately).
_OWN_CLASS = frozenset({401, 403, 429})


def status_class(status: int | None) -> str:
    """Low-cardinality label for an HTTP status: ``2xx``, ``4xx``, ``5xx``, ``401``, ``403``, ``429`` or ``network``."""
    if status is None:
        return "network"
    if status in _OWN_CLASS:
        return str(status)
    return f"{status // 100}xx"
