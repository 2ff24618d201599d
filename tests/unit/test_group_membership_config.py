"""Static group membership from the environment and the KIP-848 opt-in in the consumer's librdkafka settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError
from connector.source.kafka import consumer_config
from tests.unit.test_config import MINIMAL, write


def test_group_instance_id_from_the_environment_goes_to_librdkafka(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={"KAFKA_GROUP_INSTANCE_ID": "attentive-connector-1"})
    assert cfg.kafka.client["group.instance.id"] == "attentive-connector-1"
    assert consumer_config(cfg)["group.instance.id"] == "attentive-connector-1"


def test_an_empty_group_instance_id_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, MINIMAL), env={"KAFKA_GROUP_INSTANCE_ID": "  "})
    assert "KAFKA_GROUP_INSTANCE_ID is set but empty" in str(exc.value)
    assert "\n" not in str(exc.value).strip()


def test_classic_protocol_forces_cooperative_sticky(tmp_path: Path) -> None:
    conf = consumer_config(load_config(write(tmp_path, MINIMAL), env={}))
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert conf["enable.auto.commit"] is False


def test_consumer_protocol_sets_no_classic_only_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = MINIMAL + "kafka:\n  client:\n    group.protocol: consumer\n    session.timeout.ms: 6000\n"
    with caplog.at_level(logging.WARNING):
        conf = consumer_config(load_config(write(tmp_path, text), env={}))
    assert conf["group.protocol"] == "consumer"
    assert "partition.assignment.strategy" not in conf
    assert "session.timeout.ms" not in conf
    assert conf["enable.auto.commit"] is False and conf["enable.auto.offset.store"] is False
    assert "kafka.client.session.timeout.ms is ignored with group.protocol=consumer" in caplog.text


def test_the_fetch_defaults_can_be_overridden_in_kafka_client(tmp_path: Path) -> None:
    """A partition let go after a hold is fetched within 0.1 s by default (librdkafka's 0.5 s fetch wait
    delayed its records); the user's kafka.client still wins."""
    conf = consumer_config(load_config(write(tmp_path, MINIMAL), env={}))
    assert conf["fetch.wait.max.ms"] == 100
    assert conf["max.partition.fetch.bytes"] == 65536
    assert conf["fetch.queue.backoff.ms"] == 20  # a full prefetch is looked at again after 20 ms, not 1 s
    text = MINIMAL + "kafka:\n  client:\n    fetch.wait.max.ms: 500\n"
    assert consumer_config(load_config(write(tmp_path, text), env={}))["fetch.wait.max.ms"] == 500
