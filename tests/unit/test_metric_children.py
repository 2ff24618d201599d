"""``Children``: the per-record metrics' children looked up once, with the same samples as ``labels()``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from connector.observability.metrics import Children, Metrics


def test_children_are_looked_up_once_and_count_like_labels() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    processed = Children(metrics.records_processed)
    first = processed("orders", "r1", "delivered")
    assert processed("orders", "r1", "delivered") is first
    first.inc()
    processed("orders", "r1", "delivered").inc()
    processed("signups", "r2", "skipped").inc()
    metrics.records_processed.labels("orders", "r1", "delivered").inc()
    value = registry.get_sample_value(
        "attentive_connector_records_processed_total",
        {"topic": "orders", "rule": "r1", "outcome": "delivered"},
    )
    assert value == 3
    assert (
        registry.get_sample_value(
            "attentive_connector_records_processed_total",
            {"topic": "signups", "rule": "r2", "outcome": "skipped"},
        )
        == 1
    )
