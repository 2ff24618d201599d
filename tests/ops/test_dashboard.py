"""The Grafana dashboard: Grafana's own schema, structure, PromQL validity, and that every queried metric is
exported by the code.

No Grafana server is obtainable here; the schema check uses Grafana's published dashboard models
(``grafana-foundation-sdk``, generated from Grafana's schema): the JSON is parsed into the typed models and
written back out, and every key the schema does not know is dropped on the way — so a misspelt key shows up
in the diff. The PromQL of every panel is run against a live connector in
``tests/integration/test_prometheus_alerts.py``.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from connector.observability.metrics import Metrics
from tests.metric_catalog import (
    dashboard_queries,
    exported_metric_names,
    promql_metric_names,
    queried_metric_names,
)
from tests.ops.conftest import CHART
from tests.support import REPO

SOURCE = CHART / "files" / "attentive-connector.json"
COPY = REPO / "ops" / "grafana" / "attentive-connector.json"


# Keys real Grafana reads that the SDK's models do not carry (a round trip drops them): the only drops allowed.
# Paths use [*] for any list index.
ALLOWED_DROPS = frozenset(
    {
        "/__inputs",  # the export format's data-source prompts on import, outside the dashboard model
        "/templating/list[*]/definition",  # a query variable's query as text, shown by Grafana's editor
    }
)


def grafana_round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` parsed into grafana-foundation-sdk's typed Dashboard model and written back out as JSON."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()  # panel and query types (timeseries, stat, prometheus, ...)
    model = Dashboard.from_json(copy.deepcopy(doc))
    out: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return out


def lost_in_round_trip(original: Any, back: Any, path: str = "") -> list[tuple[str, str]]:
    """``(path, what)`` for every key of ``original`` missing from ``back`` or whose value changed.

    Keys only ``back`` has are the schema's defaults filled in, and are fine.
    """
    if isinstance(original, dict) and isinstance(back, dict):
        out: list[tuple[str, str]] = []
        for key, value in original.items():
            if key not in back:
                out.append((f"{path}/{key}", "dropped"))
            else:
                out.extend(lost_in_round_trip(value, back[key], f"{path}/{key}"))
        return out
    if isinstance(original, list) and isinstance(back, list) and len(original) == len(back):
        return [
            hit
            for i, (a, b) in enumerate(zip(original, back, strict=False))
            for hit in lost_in_round_trip(a, b, f"{path}[{i}]")
        ]
    return [] if original == back else [(path, f"changed {original!r} -> {back!r}")]


def _pattern(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SOURCE.read_text())
    return doc


def test_dashboard_survives_grafanas_schema_models(dashboard: dict[str, Any]) -> None:
    lost = lost_in_round_trip(dashboard, grafana_round_trip(dashboard))
    unexpected = [(p, what) for p, what in lost if _pattern(p) not in ALLOWED_DROPS]
    assert unexpected == []
    # The allow-list stays as short as it must be: every entry is still needed.
    assert {_pattern(p) for p, _ in lost} == ALLOWED_DROPS


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["panels"][1].update(gridpos=d["panels"][1].pop("gridPos")), "/panels[1]/gridpos"),
        (
            lambda d: d["panels"][1]["fieldConfig"]["defaults"].update(
                units=d["panels"][1]["fieldConfig"]["defaults"].pop("unit", "short")
            ),
            "/panels[1]/fieldConfig/defaults/units",
        ),
        (
            lambda d: d["panels"][2]["targets"][0].update(exp=d["panels"][2]["targets"][0].pop("expr")),
            "/panels[2]/targets[0]/exp",
        ),
        (lambda d: d["templating"]["list"][1].update(incudeAll=True), "/templating/list[1]/incudeAll"),
    ],
    ids=["gridPos", "fieldConfig.defaults.unit", "targets[].expr", "templating.includeAll"],
)
def test_the_schema_check_catches_a_misspelt_key(
    dashboard: dict[str, Any], mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    broken = copy.deepcopy(dashboard)
    mutate(broken)
    lost = lost_in_round_trip(broken, grafana_round_trip(broken))
    assert (expected, "dropped") in lost


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
