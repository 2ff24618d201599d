"""Decoding raw and Confluent-framed Avro: the representation, every DecodeError reason, the registry cache."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.avro.decoder import Decoder, confluent_schema_id
from connector.avro.encoder import Encoder
from connector.avro.registry import WriterSchemas
from connector.config import Encoding
from connector.errors import ConfigError, DecodeError, RegistryUnavailableError
from tests.unit.avro_rules_support import decoded, mock_registry, order, schema, signup


def _raw(topic: str, record: dict[str, Any]) -> bytes:
    return Encoder(schema(topic), Encoding.RAW).encode(record)


def test_raw_round_trip_and_representation() -> None:
    record = decoded("orders", order())
    d = Decoder("orders", schema("orders"), Encoding.RAW)
    out = d.decode(_raw("orders", record))
    assert out == record
    assert out["event_id"] == "0b6f3bd8-8f0e-4f39-9a43-3f1d0d7d2a11"  # uuid as text, not uuid.UUID
    assert out["kind"] == "ORDER_PLACED"
    assert out["occurred_at"] == datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
    assert out["items"][0]["unit_price"]["amount"] == Decimal("24.00")
    assert out["totals"] is None and out["channel"] == "WEB"  # defaults filled in
    s = decoded("signups", signup(birthday="1990-02-03"))
    assert Decoder("signups", schema("signups"), Encoding.RAW).decode(_raw("signups", s))["birthday"] == date(
        1990, 2, 3
    )


def test_confluent_round_trip_fetches_each_writer_schema_once() -> None:
    client = mock_registry()
    calls: list[int] = []
    real_get = client.get_schema

    def counting_get(schema_id: int, *a: Any, **kw: Any) -> Any:
        calls.append(schema_id)
        return real_get(schema_id, *a, **kw)

    client.get_schema = counting_get  # type: ignore[method-assign]
    enc = Encoder(schema("orders"), Encoding.CONFLUENT, registry_client=client, subject="orders-value")
    value = enc.encode(decoded("orders", order()))
    assert value[0] == 0 and confluent_schema_id(value) == enc.schema_id
    d = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(client))
    assert d.needs_registry(value)
    for _ in range(5):
        assert d.decode(value)["order_id"] == "ORD-1001"
    assert not d.needs_registry(value)
    assert calls == [enc.schema_id]


def test_confluent_topic_without_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="kafka.schema_registry.url"):
        Decoder("orders", schema("orders"), Encoding.CONFLUENT)


@pytest.mark.parametrize("value", [b"", None])
def test_empty_value(value: bytes | None) -> None:
    for enc in (Encoding.RAW, Encoding.CONFLUENT):
        d = Decoder("orders", schema("orders"), enc, writer_schemas=WriterSchemas(mock_registry()))
        with pytest.raises(DecodeError) as err:
            d.decode(value)
        assert err.value.reason == "empty" and err.value.permanent


def test_bad_magic_byte() -> None:
    d = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(mock_registry()))
    raw_avro = _raw("orders", decoded("orders", order()))  # a raw producer writing to a confluent topic
    with pytest.raises(DecodeError) as err:
        d.decode(raw_avro)
    assert err.value.reason == "bad_magic"
    assert "0x48" in str(err.value) and "encoding: confluent" in str(err.value)
    assert not d.needs_registry(raw_avro)


def test_truncated_header_and_truncated_body() -> None:
    client = mock_registry()
    enc = Encoder(schema("orders"), Encoding.CONFLUENT, registry_client=client, subject="orders-value")
    value = enc.encode(decoded("orders", order()))
    d = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(client))
    with pytest.raises(DecodeError) as err:
        d.decode(value[:3])
    assert err.value.reason == "truncated" and "5-byte Confluent header" in str(err.value)
    with pytest.raises(DecodeError) as err:
        d.decode(value[:-10])
    assert err.value.reason == "truncated"
    raw = Decoder("orders", schema("orders"), Encoding.RAW)
    with pytest.raises(DecodeError) as err:
        raw.decode(_raw("orders", decoded("orders", order()))[:20])
    assert err.value.reason == "truncated"


@pytest.mark.parametrize(
    "value",
    [
        b'{"kind": "ORDER_PLACED", "order_id": "x"}',  # JSON, not Avro (negative length)
        b"\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # garbage varints
    ],
)
def test_not_avro(value: bytes) -> None:
    d = Decoder("orders", schema("orders"), Encoding.RAW)
    with pytest.raises(DecodeError) as err:
        d.decode(value)
    assert err.value.reason == "not_avro"
    assert "orders.avsc" in str(err.value)


def test_trailing_bytes_are_not_avro() -> None:
    d = Decoder("orders", schema("orders"), Encoding.RAW)
    with pytest.raises(DecodeError) as err:
        d.decode(_raw("orders", decoded("orders", order())) + b"\x00\x01\x02")
    assert err.value.reason == "not_avro" and "3 bytes left after the record" in str(err.value)


def test_unknown_schema_id_is_permanent_and_remembered() -> None:
    client = mock_registry()
    calls: list[int] = []
    real_get = client.get_schema

    def counting_get(schema_id: int, *a: Any, **kw: Any) -> Any:
        calls.append(schema_id)
        return real_get(schema_id, *a, **kw)

    client.get_schema = counting_get  # type: ignore[method-assign]
    now = [1000.0]
    d = Decoder(
        "orders",
        schema("orders"),
        Encoding.CONFLUENT,
        writer_schemas=WriterSchemas(client, negative_ttl_s=30, clock=lambda: now[0]),
    )
    value = b"\x00\x00\x00\x01\x2c" + b"\x02"
    for _ in range(3):
        with pytest.raises(DecodeError) as err:
            d.decode(value)
        assert err.value.reason == "unknown_schema" and "schema id 300" in str(err.value)
    assert calls == [300]  # one lookup for the burst
    assert not d.needs_registry(value)
    now[0] += 31
    assert d.needs_registry(value)
    with pytest.raises(DecodeError):
        d.decode(value)
    assert calls == [300, 300]


def test_non_avro_and_unparsable_writer_schemas_are_unknown_schema() -> None:
    client = mock_registry()
    proto_id = client.register_schema(
        "p-value", Schema('syntax = "proto3"; message M {}', schema_type="PROTOBUF")
    )
    d = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(client))
    with pytest.raises(DecodeError) as err:
        d.decode(b"\x00" + proto_id.to_bytes(4, "big") + b"\x00")
    assert err.value.reason == "unknown_schema" and "PROTOBUF" in str(err.value)


class _FailingClient:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get_schema(self, schema_id: int) -> Any:
        raise self.exc

    def register_schema(self, subject_name: str, schema: Any) -> int:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        ConnectionRefusedError(111, "refused"),
        SchemaRegistryError(503, 50003, "unavailable"),
        SchemaRegistryError(500, 50001, "store error"),
        SchemaRegistryError(429, 42900, "slow down"),
        SchemaRegistryError(401, 40101, "unauthorized"),
    ],
)
def test_registry_unreachable_is_transient(exc: BaseException) -> None:
    d = Decoder(
        "orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(_FailingClient(exc))
    )
    value = b"\x00\x00\x00\x00\x07\x02"
    with pytest.raises(RegistryUnavailableError) as err:
        d.decode(value)
    assert err.value.retriable and not err.value.permanent
    assert d.needs_registry(value)  # nothing cached: the next attempt asks again


def test_registry_4xx_other_than_404_is_unknown_schema() -> None:
    d = Decoder(
        "orders",
        schema("orders"),
        Encoding.CONFLUENT,
        writer_schemas=WriterSchemas(_FailingClient(SchemaRegistryError(422, 42202, "bad id"))),
    )
    with pytest.raises(DecodeError) as err:
        d.decode(b"\x00\x00\x00\x00\x07\x02")
    assert err.value.reason == "unknown_schema"


def test_incompatible_writer_schema() -> None:
    # The writer has no `kind` and the reader's `kind` has no default: the reader cannot fill it in.
    writer = json.loads((schema("orders").path).read_text())
    writer["fields"] = [f for f in writer["fields"] if f["name"] != "kind"]
    client = mock_registry()
    enc = Encoder(writer, Encoding.CONFLUENT, registry_client=client, subject="orders-value")
    record = decoded("orders", order())
    del record["kind"]
    value = enc.encode(record)
    d = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(client))
    with pytest.raises(DecodeError) as err:
        d.decode(value)
    assert err.value.reason == "incompatible" and "cannot be read as orders.avsc" in str(err.value)


def test_decoder_reads_what_fastavro_writes_with_the_plain_schema() -> None:
    # A producer that does not use our Encoder (e.g. another service writing raw Avro with fastavro).
    raw = json.loads(schema("loyalty").path.read_text())
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf,
        fastavro.parse_schema(raw),
        {
            "event_id": "5d0c1f0e-2d57-4a3b-8f1e-0e7a3c2b9d44",
            "kind": "TIER_CHANGED",
            "customer": {"id": "c9"},
            "balance": 5,
            "tier": "GOLD",
            "previous_tier": "SILVER",
            "occurred_at": 1_700_000_000_000,
        },
    )
    out = Decoder("loyalty", schema("loyalty"), Encoding.RAW).decode(buf.getvalue())
    assert out["previous_tier"] == "SILVER" and out["points_delta"] == 0
    assert out["occurred_at"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_registry_client_from_config() -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from connector.avro.registry import make_registry_client
    from connector.config import SchemaRegistrySettings

    client = make_registry_client(
        SchemaRegistrySettings(url="http://127.0.0.1:1", client={"max.retries": "0"})
    )
    assert isinstance(client, SchemaRegistryClient)
    assert client._rest_client.max_retries == 0  # text from YAML/env became the number the client needs
    default = make_registry_client(SchemaRegistrySettings(url="http://127.0.0.1:1"))
    assert isinstance(default, SchemaRegistryClient)
    assert default._rest_client.max_retries == 1 and default._rest_client.retries_wait_ms == 200
    assert (
        type(make_registry_client(SchemaRegistrySettings(url="mock://t"))).__name__
        == "MockSchemaRegistryClient"
    )
    with pytest.raises(ConfigError, match=r"kafka.schema_registry.client.timeout: must be a number"):
        make_registry_client(SchemaRegistrySettings(url="http://x", client={"timeout": "soon"}))
    with pytest.raises(ConfigError, match="kafka.schema_registry: Invalid url ftp://x"):
        make_registry_client(SchemaRegistrySettings(url="ftp://x"))
    with pytest.raises(ConfigError, match="Unrecognized properties: bogus.key"):
        make_registry_client(SchemaRegistrySettings(url="http://x", client={"bogus.key": "1"}))
