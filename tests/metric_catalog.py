"""Which metrics the Grafana dashboard and the alert rules query, so tests can prove the connector exports them.

A dashboard that queries a metric the code renamed shows "No data" and an alert on it never fires, both
silently. :func:`queried_metric_names` reads ``ops/grafana/attentive-connector.json`` and
``ops/prometheus/alerts.yml`` (in a source checkout), pulls the metric names out of every PromQL
expression and drops the names the connector does not export itself (recording-rule outputs and
Prometheus's own ``up``). Compare the result with :func:`exported_metric_names` of a registry, or of a
scraped ``/metrics`` page.

The PromQL scan is lexical, not a full parser: it removes strings, label matchers, ranges, grouping
clauses and Grafana variables, then keeps identifiers that are not keywords or function calls. That is
exact for the expressions we write (aggregations, ``rate``/``increase``/``deriv``, ``histogram_quantile``,
``offset``, ``absent``, binary operators with ``on``/``unless``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "EXTERNAL_METRICS",
    "alert_rule_queries",
    "dashboard_queries",
    "default_paths",
    "exported_metric_names",
    "promql_metric_names",
    "queried_metric_names",
]

# Series that Prometheus itself produces, not the connector.
EXTERNAL_METRICS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"inf", "nan", "start", "end", "atan2"}
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACKETS = re.compile(r"\[[^\]]*\]")
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_GRAFANA_VARS = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*)\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by one PromQL expression (Grafana variables allowed)."""
    text = _GRAFANA_VARS.sub(" ", _STRINGS.sub('""', expr))
    text = _MATCHERS.sub(" ", _BRACKETS.sub(" ", text))
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def _grafana_variable_query(query: Any) -> str | None:
    """The PromQL inside a Grafana query variable (``label_values(expr, label)``), if any."""
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str) or not query.strip():
        return None
    m = _LABEL_VALUES.match(query)
    if m is None:
        return query  # query_result(...) and friends: plain PromQL after the wrapper is removed below
    inner = m.group(1)
    # label_values(label) has no metric; label_values(expr, label) has one before the last comma.
    return inner.rsplit(",", 1)[0] if "," in inner else None


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest their panels


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a Grafana dashboard: panel targets and query variables."""
    exprs = [
        target["expr"]
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if isinstance(target.get("expr"), str) and target["expr"].strip()
    ]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = _grafana_variable_query(var.get("query"))
            if q:
                exprs.append(re.sub(r"^\s*query_result\s*\((.*)\)\s*$", r"\1", q, flags=re.DOTALL))
    return exprs


def alert_rule_queries(rules_file: dict[str, Any]) -> tuple[list[str], set[str]]:
    """``(expressions, recorded names)`` of a Prometheus rules file (``groups: [{rules: [...]}]``)."""
    exprs: list[str] = []
    recorded: set[str] = set()
    for group in rules_file.get("groups", []):
        for rule in group.get("rules", []):
            exprs.append(str(rule["expr"]))
            if "record" in rule:
                recorded.add(str(rule["record"]))
    return exprs, recorded


def default_paths() -> tuple[Path, Path]:
    """``(dashboard, alerts)`` in this source checkout (tests/ is at its top)."""
    repo = Path(__file__).resolve().parents[1]
    return repo / "ops" / "grafana" / "attentive-connector.json", repo / "ops" / "prometheus" / "alerts.yml"


def queried_metric_names(dashboard: Path | None = None, alerts: Path | None = None) -> set[str]:
    """Names the dashboard and alerts query that the connector itself must export.

    Histogram series keep their suffix (``..._bucket``) and counters their ``_total``, as in the queries.

    :raises FileNotFoundError: outside a source checkout (the ops/ folder is not installed with the package).
    """
    default_dashboard, default_alerts = default_paths()
    dashboard = dashboard or default_dashboard
    alerts = alerts or default_alerts
    for path in (dashboard, alerts):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: queried_metric_names() needs the repository's ops/ folder"
            )
    exprs = dashboard_queries(json.loads(dashboard.read_text(encoding="utf-8")))
    rule_exprs, recorded = alert_rule_queries(yaml.safe_load(alerts.read_text(encoding="utf-8")))
    names: set[str] = set()
    for expr in [*exprs, *rule_exprs]:
        names |= promql_metric_names(expr)
    return names - recorded - EXTERNAL_METRICS


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}


def exported_metric_names(source: CollectorRegistry | str) -> set[str]:
    """Series names a registry (or a scraped ``/metrics`` text) exposes: ``x_total``, ``x_bucket``, ...

    A labelled metric that has not been used yet exports no sample, only its ``# TYPE`` line; its series
    names are derived from that declaration, so a connector that has not dead-lettered anything still
    counts as exporting ``..._dlq_records_total``.
    """
    families = list(text_string_to_metric_families(source) if isinstance(source, str) else source.collect())
    names = {sample.name for family in families for sample in family.samples}
    for family in families:
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names
