"""Alert rules: promtool on the plain file and on the chart's PrometheusRule, coverage of the unit tests."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import CHART, Rendered
from tests.support import REPO

ALERTS = REPO / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "ops" / "prometheus" / "alerts.test.yml"
RUNBOOK = REPO / "ops" / "runbook.md"


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False, timeout=120)


def _alert_rules(groups_doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups_doc["groups"] for r in g["rules"] if "alert" in r}


def _prometheus_rule(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("PrometheusRule")["spec"]
    return spec


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return doc


def test_promtool_check_plain_rules(promtool_bin: str) -> None:
    out = _promtool(promtool_bin, "check", "rules", str(ALERTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_pass(promtool_bin: str) -> None:
    out = _promtool(promtool_bin, "test", "rules", str(ALERT_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_catch_a_broken_rule(promtool_bin: str, tmp_path: Path) -> None:
    """The unit tests can fail: raise a threshold tenfold and the firing case must break."""
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text().replace("> 10000", "> 100000"))
    (tmp_path / "alerts.test.yml").write_text(ALERT_TESTS.read_text())
    out = _promtool(promtool_bin, "test", "rules", str(tmp_path / "alerts.test.yml"))
    assert out.returncode != 0
    assert "AttentiveConnectorLagHighAndGrowing" in out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_case(plain: dict[str, Any]) -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alert_rules(plain))
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_the_alerts_cover_the_issue(plain: dict[str, Any]) -> None:
    rules = _alert_rules(plain)
    expr = {name: r["expr"] for name, r in rules.items()}
    assert "deriv(" in expr["AttentiveConnectorLagHighAndGrowing"]  # high AND growing
    assert "records_processed_total" in expr["AttentiveConnectorStalled"]  # lag > 0, nothing processed
    assert "dlq_records_total" in expr["AttentiveConnectorDeadLetters"]
    assert '"5xx|network"' in expr["AttentiveConnectorApiErrorRatioHigh"]
    assert '"401|403"' in expr["AttentiveConnectorAuthFailures"]
    assert "attentive_connector_ready == 0" in expr["AttentiveConnectorNotReady"]
    assert "absent(up{" in expr["AttentiveConnectorDown"]


def test_every_alert_is_documented_and_linked_to_its_runbook_section(plain: dict[str, Any]) -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in _alert_rules(plain).items():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        url = rule["annotations"]["runbook_url"]
        assert url.endswith("ops/runbook.md#" + name.lower()), url
        assert name.lower() in anchors, f"ops/runbook.md has no section for {name}"


def test_values_configure_exactly_the_alerts_in_the_template(plain: dict[str, Any]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    configured = values["prometheusRule"]["alerts"]
    assert set(configured) == set(_alert_rules(plain))
    for name, rule in _alert_rules(plain).items():
        assert rule["for"] == configured[name]["for"]
        assert rule["labels"]["severity"] == configured[name]["severity"]
        if "threshold" in configured[name]:
            assert f"> {configured[name]['threshold']}" in rule["expr"]


def test_prometheus_rule_with_defaults_is_the_plain_file(
    render: Callable[..., Rendered], plain: dict[str, Any]
) -> None:
    spec = _prometheus_rule(render(set_values=["prometheusRule.enabled=true"]))
    assert spec == plain


def test_prometheus_rule_takes_thresholds_for_and_severity_from_values(
    render: Callable[..., Rendered], promtool_bin: str, tmp_path: Path
) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"])
    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = _alert_rules(rule["spec"])
    lag = alerts["AttentiveConnectorLagHighAndGrowing"]
    assert "> 250000" in lag["expr"] and lag["for"] == "30m" and lag["labels"]["severity"] == "critical"
    assert "> 10" in alerts["AttentiveConnectorDeadLetters"]["expr"]
    assert alerts["AttentiveConnectorStalled"]["for"] == "20m"
    assert "AttentiveConnectorApiErrorRatioHigh" not in alerts  # disabled
    assert 'job=~"attentive-connector"' in alerts["AttentiveConnectorDown"]["expr"]
    assert alerts["AttentiveConnectorDown"]["annotations"]["runbook_url"].startswith(
        "https://wiki.example.com/"
    )
    # The rendered rules are valid for Prometheus itself.
    rules_file = tmp_path / "rendered.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    out = _promtool(promtool_bin, "check", "rules", str(rules_file))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts) + 1} rules found" in out.stdout  # + the recording rule


def test_no_prometheus_rule_unless_enabled(render: Callable[..., Rendered]) -> None:
    assert not render().has("PrometheusRule")


def test_generated_files_are_in_sync(helm_bin: str) -> None:
    """ops/ copies, the chart's default rules and the schema's generated $defs match their sources."""
    from tests.ops.sync_module import sync

    assert [str(p.relative_to(REPO)) for p in sync.drifted(helm_bin)] == []
