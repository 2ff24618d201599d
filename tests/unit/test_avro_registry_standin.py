"""The Schema Registry stand-in answers confluent-kafka's real client the way Confluent's registry does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.devkafka.schema_registry import SchemaRegistryHandle, start_schema_registry
from tests.unit.avro_rules_support import SCHEMAS

ORDERS = (SCHEMAS / "orders.avsc").read_text()
LOYALTY = (SCHEMAS / "loyalty.avsc").read_text()


@pytest.fixture(scope="module")
def registry() -> Iterator[SchemaRegistryHandle]:
    with start_schema_registry() as handle:
        yield handle


def client(registry: SchemaRegistryHandle) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url, "max.retries": 0})


def test_register_fetch_and_versions(registry: SchemaRegistryHandle) -> None:
    c = client(registry)
    orders_id = c.register_schema("t1-value", Schema(ORDERS, "AVRO"))
    assert c.register_schema("t1-value", Schema(ORDERS, "AVRO")) == orders_id  # idempotent
    # the same schema under another subject keeps its global id; a second schema gets a new id and version
    assert client(registry).register_schema("t1-copy", Schema(ORDERS, "AVRO")) == orders_id
    fresh = client(registry)
    loyalty_id = fresh.register_schema("t1-value", Schema(LOYALTY, "AVRO"))
    assert loyalty_id != orders_id
    assert json.loads(fresh.get_schema(orders_id).schema_str or "") == json.loads(ORDERS)
    assert fresh.get_schema(orders_id).schema_type == "AVRO"
    latest = fresh.get_latest_version("t1-value")
    assert (latest.schema_id, latest.version) == (loyalty_id, 2)
    assert fresh.get_version("t1-value", 1).schema_id == orders_id
    assert fresh.get_versions("t1-value") == [1, 2]
    assert fresh.lookup_schema("t1-value", Schema(ORDERS, "AVRO")).version == 1
    assert sorted(fresh.get_subjects_by_schema_id(orders_id)) == ["t1-copy", "t1-value"]
    assert {(v.subject, v.version) for v in fresh.get_schema_versions(orders_id)} == {
        ("t1-copy", 1),
        ("t1-value", 1),
    }
    assert "t1-value" in fresh.get_subjects()
    assert fresh.get_schema_types() == ["AVRO"]
    assert fresh.delete_subject("t1-copy") == [1]
    assert "t1-copy" not in fresh.get_subjects()


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.get_schema(9999), 404, 40403),
        (lambda c: c.get_latest_version("no-such-subject"), 404, 40401),
        (lambda c: c.get_versions("no-such-subject"), 404, 40401),
        (lambda c: c.lookup_schema("no-such-subject", Schema(ORDERS, "AVRO")), 404, 40401),
        (
            lambda c: c.register_schema(
                "bad",
                Schema(
                    '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nosuch"}]}', "AVRO"
                ),
            ),
            422,
            42201,
        ),
        (lambda c: c.register_schema("bad", Schema("not json", "AVRO")), 422, 42201),
        (lambda c: c.register_schema("bad", Schema('syntax = "proto3";', "PROTOBUF")), 422, 42201),
        (lambda c: c.delete_subject("no-such-subject"), 404, 40401),
    ],
)
def test_errors_use_the_registry_error_codes(
    registry: SchemaRegistryHandle, call: object, status: int, code: int
) -> None:
    with pytest.raises(SchemaRegistryError) as err:
        call(client(registry))  # type: ignore[operator]
    assert (err.value.http_status_code, err.value.error_code) == (status, code)


def test_lookup_of_a_schema_not_in_the_subject(registry: SchemaRegistryHandle) -> None:
    c = client(registry)
    c.register_schema("t2-value", Schema(ORDERS, "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client(registry).lookup_schema("t2-value", Schema(LOYALTY, "AVRO"))
    assert err.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as err:
        client(registry).get_version("t2-value", 7)
    assert err.value.error_code == 40402


def test_compatibility_config_is_stored(registry: SchemaRegistryHandle) -> None:
    c = client(registry)
    assert c.get_compatibility() == "BACKWARD"
    c.set_compatibility(level="full")
    assert c.get_compatibility() == "FULL"
    c.set_compatibility("t3-value", "NONE")
    assert c.get_compatibility("t3-value") == "NONE"
    with pytest.raises(SchemaRegistryError) as err:
        c.get_compatibility("unset-subject")
    assert err.value.error_code == 40408


def test_injected_failures_and_stop() -> None:
    handle = start_schema_registry()
    c = client(handle)
    handle.fail_with(503)
    with pytest.raises(SchemaRegistryError) as err:
        c.get_schema(1)
    assert err.value.http_status_code == 503
    handle.fail_with(None)
    assert c.get_subjects() == []
    assert handle.request_count == 2
    handle.stop()
    handle.stop()  # idempotent
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{handle.url}/subjects", timeout=2)


def test_start_fails_clearly_on_a_taken_port(registry: SchemaRegistryHandle) -> None:
    port = int(registry.url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="failed to start"):
        start_schema_registry(port=port)
