"""Config loading: defaults, environment overrides, and errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.attentive.endpoints import Endpoint
from connector.config import Encoding, load_config
from connector.errors import ConfigError

MINIMAL = """
topics:
  orders:
    schema: ../schemas/orders.avsc
    encoding: confluent
    key_field: customer.id
rules: rules.yaml
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "connector.yaml"
    p.write_text(text)
    return p


def test_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={})
    assert cfg.kafka.bootstrap_servers == "localhost:9092"
    assert cfg.topics["orders"].encoding is Encoding.CONFLUENT
    assert cfg.dlq_topic("orders") == "orders.dlq"
    assert cfg.resolve(cfg.rules_file) == tmp_path / "rules.yaml"
    assert cfg.resolve(cfg.topics["orders"].schema_file) == tmp_path / "../schemas/orders.avsc"
    assert cfg.delivery.max_in_flight == 64
    assert cfg.metrics.port == 9400
    assert cfg.attentive.rate_limit(Endpoint.SUBSCRIBE) == 10
    assert cfg.attentive.rate_limit(Endpoint.UNSUBSCRIBE) == 5
    assert cfg.attentive.rate_limit(Endpoint.PURCHASE) == 150


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
        "KAFKA_GROUP_ID": "g2",
        "ATTENTIVE_API_BASE_URL": "http://127.0.0.1:9",
        "ATTENTIVE_API_KEY": "k-123",
        "METRICS_PORT": "9555",
        "SCHEMA_REGISTRY_URL": "http://registry:8081",
    }
    cfg = load_config(write(tmp_path, MINIMAL), env=env)
    assert cfg.kafka.bootstrap_servers == "broker:9093"
    assert cfg.kafka.group_id == "g2"
    assert cfg.kafka.schema_registry is not None
    assert cfg.kafka.schema_registry.url == "http://registry:8081"
    assert cfg.attentive.base_url == "http://127.0.0.1:9"
    assert cfg.attentive.resolved_api_key().get_secret_value() == "k-123"
    assert cfg.metrics.port == 9555


def test_api_key_from_a_mounted_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("from-file-key\n")
    cfg = load_config(write(tmp_path, MINIMAL), env={"ATTENTIVE_API_KEY_FILE": str(key)})
    assert cfg.attentive.resolved_api_key().get_secret_value() == "from-file-key"


def test_missing_api_key_is_a_clear_error(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={})
    with pytest.raises(ConfigError, match="ATTENTIVE_API_KEY"):
        cfg.attentive.resolved_api_key()


def test_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={"ATTENTIVE_API_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="ATTENTIVE_API_KEY_FILE: cannot read the API key file .*nope"):
        cfg.attentive.resolved_api_key()


def test_api_key_never_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env={"ATTENTIVE_API_KEY": "super-secret-value"})
    assert "super-secret-value" not in repr(cfg)
    assert "super-secret-value" not in str(cfg.model_dump())


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "delivery:\n  max_in_flite: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    msg = str(exc.value)
    assert str(p) in msg
    assert "delivery.max_in_flite" in msg
    assert "unknown key" in msg


def test_bad_value_names_key_without_echoing_it(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "attentive:\n  api_key: 12345secret\n  timeout_s: -1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    assert "attentive.timeout_s" in str(exc.value)
    assert "12345secret" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("topics: [", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("kafka: {}\n", "topics"),
        ("topics: {}\n", "at least one topic"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", env={})


def test_sasl_credentials_from_the_environment_pass_through_to_librdkafka(tmp_path: Path) -> None:
    text = MINIMAL + "kafka:\n  client:\n    security.protocol: SASL_SSL\n    sasl.mechanism: SCRAM-SHA-512\n"
    cfg = load_config(
        write(tmp_path, text), env={"KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw-secret"}
    )
    assert cfg.kafka.client == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "pw-secret",
    }
    assert "pw-secret" not in repr(cfg)
