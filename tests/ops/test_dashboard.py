"""The Grafana dashboard: structure, PromQL validity, and that every queried metric is exported by the code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from connector.observability.catalog import (
    dashboard_queries,
    exported_metric_names,
    promql_metric_names,
    queried_metric_names,
)
from connector.observability.metrics import Metrics
from tests.ops.conftest import CHART
from tests.support import REPO

SOURCE = CHART / "files" / "attentive-connector.json"
COPY = REPO / "ops" / "grafana" / "attentive-connector.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SOURCE.read_text())
    return doc


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def touched_metrics() -> Metrics:
    """A fresh Metrics with one child of every labelled metric, so each family exports its samples."""
    metrics = Metrics(CollectorRegistry())
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase) and value._labelnames:
            value.labels(*["x"] * len(value._labelnames))
    return metrics


def test_ops_copy_is_the_chart_source() -> None:
    assert COPY.read_bytes() == SOURCE.read_bytes()


def test_identity_and_templating(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "attentive-connector"
    assert dashboard["title"] == "attentive-connector"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for name in ("namespace", "pod"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variables[name]["includeAll"] is True


def test_rows_cover_the_issue(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview",
        "Throughput",
        "Attentive API",
        "Lag",
        "Dead letters and errors",
        "Retries and rate limits",
        "Consumer health",
        "Runtime",
    ]
    text = json.dumps(dashboard)
    for needle in (
        "sum by (rule, outcome) (rate(attentive_connector_records_processed_total",  # throughput by rule/outcome
        "sum by (endpoint, status_class) (rate(attentive_connector_api_requests_total",  # requests by status
        "histogram_quantile(0.99, sum by (le, endpoint) (rate(attentive_connector_api_request_duration_seconds",
        "max by (topic, partition) (attentive_connector_consumer_lag",  # lag in offsets
        "attentive_connector_delivery_lag_seconds_bucket",  # lag in seconds
        "sum by (topic, reason) (rate(attentive_connector_dlq_records_total",  # DLQ by reason
        "attentive_connector_api_retries_total",
        "attentive_connector_rate_limit_remaining",
        "attentive_connector_rebalances_total",
        "attentive_connector_paused_partitions",
        "attentive_connector_in_flight_requests",
        "attentive_connector_ready",
    ):
        assert needle in text, needle


def test_every_panel_queries_the_templated_datasource_and_pods(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard)}) == len(_panels(dashboard))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace", pod=~"$pod"' in target["expr"], (panel["title"], target["expr"])
            if "rate(" in target["expr"] or "increase(" in target["expr"]:
                assert "[$__rate_interval]" in target["expr"], target["expr"]


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _panels(dashboard):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps at {(x, y)}"
                cells.add((x, y))


def test_dashboard_promql_parses(dashboard: dict[str, Any], promtool_bin: str, tmp_path: Path) -> None:
    """Prometheus's own parser (via promtool) checks every dashboard expression."""
    exprs = dashboard_queries(dashboard)
    assert len(exprs) > 30

    def concrete(expr: str) -> str:
        expr = expr.replace("$__rate_interval", "5m")
        return re.sub(r"\$\{?\w+\}?", ".*", expr)

    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"q:{i}", "expr": concrete(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        [promtool_bin, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_queried_metric_is_exported_by_the_connector() -> None:
    queried = queried_metric_names()
    exported = exported_metric_names(touched_metrics().registry)
    assert queried - exported == set()
    # Sanity: the check is not vacuous.
    assert {"attentive_connector_records_processed_total", "attentive_connector_consumer_lag"} <= queried
    assert len(queried) >= 20


def test_the_check_catches_a_renamed_metric(tmp_path: Path) -> None:
    doc = json.loads(SOURCE.read_text())
    doc["panels"][2]["targets"][0]["expr"] = "sum(rate(attentive_connector_records_eaten_total[5m]))"
    broken = tmp_path / "dash.json"
    broken.write_text(json.dumps(doc))
    missing = queried_metric_names(dashboard=broken) - exported_metric_names(touched_metrics().registry)
    assert missing == {"attentive_connector_records_eaten_total"}


def test_declared_but_unused_labelled_metrics_count_as_exported() -> None:
    fresh = exported_metric_names(Metrics(CollectorRegistry()).registry)  # no labelled child touched
    assert {
        "attentive_connector_dlq_records_total",
        "attentive_connector_api_request_duration_seconds_bucket",
        "attentive_connector_consumer_lag",
        "attentive_connector_build_info",
    } <= fresh
    assert queried_metric_names() - fresh == set()


def test_catalog_reads_the_scraped_text_format_too() -> None:
    metrics = touched_metrics()
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    from_text = exported_metric_names(text)
    assert queried_metric_names() - from_text == set()
    untouched = exported_metric_names(generate_latest(Metrics(CollectorRegistry()).registry).decode())
    assert "attentive_connector_dlq_write_errors_total" in untouched


def test_recording_rules_and_up_are_not_required_from_the_connector() -> None:
    queried = queried_metric_names()
    assert "attentive_connector:consumer_lag:sum" not in queried
    assert "up" not in queried
    assert promql_metric_names("absent(up{job=~'x'} == 1)") == {"up"}
