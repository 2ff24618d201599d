"""The chart's config defaults are config/connector.yaml's (issue 12, item 7), kept so by ``make sync``.

The reproduction: the chart ran with 64 requests in flight while the shipped config says 128 (and differed in
buffer, commit interval and unmatched). Now ``values.yaml``'s ``config.attentive``, ``config.delivery`` and
``config.logging`` are a generated copy of those sections; these tests need no helm.
"""

from __future__ import annotations

import yaml

from tests.ops.sync_module import sync


def test_the_charts_shared_config_sections_equal_the_shipped_config() -> None:
    shipped = yaml.safe_load(sync.CONFIG_SOURCE.read_text(encoding="utf-8"))
    chart = yaml.safe_load(sync.VALUES_FILE.read_text(encoding="utf-8"))["config"]
    for section in sync.SHARED_SECTIONS:
        assert chart[section] == shipped[section], section
    assert chart["delivery"]["max_in_flight"] == shipped["delivery"]["max_in_flight"] == 128


def test_values_yaml_is_what_sync_generates() -> None:
    current = sync.VALUES_FILE.read_text(encoding="utf-8")
    assert (
        sync.values_with_config_defaults(current, sync.CONFIG_SOURCE.read_text(encoding="utf-8")) == current
    )


def test_an_edit_to_the_shipped_config_reaches_the_chart_and_only_the_shared_sections() -> None:
    values = sync.VALUES_FILE.read_text(encoding="utf-8")
    config = sync.CONFIG_SOURCE.read_text(encoding="utf-8").replace(
        "max_in_flight: 128", "max_in_flight: 200"
    )
    config = config.replace("bootstrap_servers: localhost:9092", "bootstrap_servers: elsewhere:9092")
    regenerated = yaml.safe_load(sync.values_with_config_defaults(values, config))["config"]
    assert regenerated["delivery"]["max_in_flight"] == 200
    assert regenerated["kafka"]["bootstrap_servers"] == "kafka:9092"  # deployment-specific: the chart's own
    assert "metrics" not in regenerated and "topics" in regenerated


def test_values_without_the_markers_is_a_clear_sync_error() -> None:
    import pytest

    with pytest.raises(sync.SyncError, match="generated-defaults markers"):
        sync.values_with_config_defaults("config:\n  kafka: {}\n", "delivery:\n  max_in_flight: 1\n")
