"""The lexical PromQL scan behind queried_metric_names()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.metric_catalog import (
    alert_rule_queries,
    dashboard_queries,
    promql_metric_names,
    queried_metric_names,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (topic) (rate(a_total{topic="x", b=~"y|z"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le, endpoint) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        (
            "a > 0 unless on (namespace, topic) sum by (namespace, topic) (rate(b_total[10m])) > 0",
            {"a", "b_total"},
        ),
        ("x_total unless x_total offset 10m", {"x_total"}),
        ("rec:lag:sum > 1e3 and deriv(rec:lag:sum[15m]) > 0", {"rec:lag:sum"}),
        ("sum(rate(c[5m])) / ignoring(pod) group_left(version) d", {"c", "d"}),
        ('time() - max by (pod) (t{namespace=~"$namespace", pod=~"${pod}"})', {"t"}),
        ('count(m{label="sum(rate(not_a_metric[5m]))"})', {"m"}),  # strings are not scanned
        ("sum without (instance) (q) or vector(0)", {"q"}),
        ("1 + 2 * 3", set()),
        ("absent(up{job=~'a'} == 1)", {"up"}),
        ("a and bool b", {"a", "b"}),
        ("quantile_over_time(0.9, z[5m:1m])", {"z"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_dashboard_queries_reads_nested_rows_and_variables() -> None:
    doc = {
        "panels": [
            {"type": "timeseries", "targets": [{"expr": "a"}, {"expr": "  "}, {"refId": "B"}]},
            {"type": "row", "collapsed": True, "panels": [{"targets": [{"expr": "b"}]}]},
        ],
        "templating": {
            "list": [
                {"type": "query", "query": {"query": "label_values(c{x='1'}, namespace)"}},
                {"type": "query", "query": "label_values(namespace)"},
                {"type": "query", "query": "query_result(topk(5, d))"},
                {"type": "datasource", "query": "prometheus"},
            ]
        },
    }
    assert dashboard_queries(doc) == ["a", "b", "c{x='1'}", "topk(5, d)"]


def test_alert_rule_queries_separates_recorded_names() -> None:
    exprs, recorded = alert_rule_queries(
        {"groups": [{"rules": [{"record": "r:x", "expr": "sum(x)"}, {"alert": "A", "expr": "r:x > 1"}]}]}
    )
    assert exprs == ["sum(x)", "r:x > 1"]
    assert recorded == {"r:x"}


def test_queried_metric_names_from_explicit_files(tmp_path: Path) -> None:
    dash = tmp_path / "d.json"
    dash.write_text(json.dumps({"panels": [{"targets": [{"expr": "rate(a_total[5m])"}]}]}))
    alerts = tmp_path / "a.yml"
    alerts.write_text(
        "groups:\n- name: g\n  rules:\n  - record: r:b\n    expr: sum(b)\n"
        "  - alert: X\n    expr: r:b > 0 or absent(up)\n"
    )
    assert queried_metric_names(dash, alerts) == {"a_total", "b"}


def test_missing_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="needs the repository's ops/ folder"):
        queried_metric_names(tmp_path / "nope.json", tmp_path / "nope.yml")
