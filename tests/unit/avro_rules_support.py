"""Helpers for the Avro, rules and samples tests: small configs in tmp_path, records, registries."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.avro.jsonrecords import from_json
from connector.avro.schema import TopicSchema, load_schema
from connector.config import ConnectorConfig, load_config
from connector.rules.router import Router

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
SHIPPED_CONFIG = REPO / "config" / "connector.yaml"
SHIPPED_RULES = REPO / "config" / "rules.yaml"
EXAMPLES = REPO / "config" / "examples"
NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)

_SCHEMA_CACHE: dict[str, TopicSchema] = {}


def schema(topic: str) -> TopicSchema:
    if topic not in _SCHEMA_CACHE:
        _SCHEMA_CACHE[topic] = load_schema(SCHEMAS / f"{topic}.avsc")
    return _SCHEMA_CACHE[topic]


def write_config(
    tmp_path: Path,
    rules: str | Path,
    *,
    topics: dict[str, dict[str, Any]] | None = None,
    unmatched: str = "skip",
    registry_url: str | None = None,
) -> Path:
    """A connector config in ``tmp_path`` whose topics use the shipped schemas; ``rules`` is YAML text or a path."""
    if isinstance(rules, Path):
        rules_path = rules
    else:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(textwrap.dedent(rules), encoding="utf-8")
    topics = topics or {t: {} for t in ("orders", "loyalty", "signups", "privacy")}
    lines = ["kafka:", "  bootstrap_servers: 127.0.0.1:1"]
    if registry_url:
        lines += ["  schema_registry:", f"    url: {registry_url}"]
    lines.append("topics:")
    for name, settings in topics.items():
        schema_topic = settings.get("schema_of", name)
        lines.append(f"  {name}:")
        lines.append(f"    schema: {SCHEMAS / (schema_topic + '.avsc')}")
        for key in ("encoding", "key_field", "dlq_topic"):
            if key in settings:
                lines.append(f"    {key}: {settings[key]}")
    lines += [f"rules: {rules_path}", "delivery:", f"  unmatched: {unmatched}"]
    path = tmp_path / "connector.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_for(tmp_path: Path, rules: str | Path, **kw: Any) -> ConnectorConfig:
    return load_config(write_config(tmp_path, rules, **kw), env={})


def router_for(
    tmp_path: Path, rules: str | Path, *, registry_client: Any = None, clock: Any = None, **kw: Any
) -> Router:
    config = config_for(tmp_path, rules, **kw)
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    return Router.from_config(config, registry_client=registry_client, **extra)


def mock_registry() -> SchemaRegistryClient:
    """confluent-kafka's in-memory registry client (``mock://``), private to the caller."""
    client: SchemaRegistryClient = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})
    return client


def order(**overrides: Any) -> dict[str, Any]:
    """An ``orders`` record in JSON form (see connector.avro.jsonrecords); overrides replace top-level keys."""
    record: dict[str, Any] = {
        "event_id": "0b6f3bd8-8f0e-4f39-9a43-3f1d0d7d2a11",
        "kind": "ORDER_PLACED",
        "order_id": "ORD-1001",
        "customer": {"id": "cust-1", "phone": "(201) 555-0123", "email": "ava@example.com"},
        "items": [
            {
                "product_id": "TEE-001",
                "variant_id": "TEE-001-M",
                "name": "Organic Cotton Tee (M)",
                "unit_price": {"amount": "24.00", "currency": "USD"},
                "quantity": 2,
                "image_url": "https://cdn.example.com/tee.jpg",
            }
        ],
        "channel": "WEB",
        "occurred_at": "2025-03-14T14:30:00Z",
    }
    record.update(overrides)
    return record


def loyalty(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "5d0c1f0e-2d57-4a3b-8f1e-0e7a3c2b9d44",
        "kind": "POINTS_EARNED",
        "customer": {"id": "cust-2", "email": "liam@example.com"},
        "points_delta": 120,
        "balance": 1520,
        "tier": "GOLD",
        "occurred_at": "2025-03-14T14:00:00Z",
    }
    record.update(overrides)
    return record


def signup(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "9a3e6c1b-7f4d-4e2a-b5c8-1d2e3f4a5b6c",
        "customer": {"id": "cust-3", "phone": "212-555-0199", "email": "maya@example.com"},
        "channel": "SMS",
        "consent": {"type": "MARKETING", "status": "OPT_IN"},
        "sign_up_source_id": "402117",
        "first_name": "Maya",
        "occurred_at": "2025-03-14T14:45:00Z",
    }
    record.update(overrides)
    return record


def decoded(topic: str, json_record: dict[str, Any]) -> dict[str, Any]:
    """The decoded representation of a JSON-form record of ``topic`` (shipped schema)."""
    return from_json(schema(topic), json_record)
