"""JSON form of records (examples, ``route --format json``) and the encoder's errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.avro.encoder import Encoder
from connector.avro.jsonrecords import from_json, jsonable, to_json
from connector.config import Encoding
from connector.errors import ConfigError, DecodeError, EncodeError, RegistryUnavailableError
from connector.formats import rfc3339
from tests.unit.avro_rules_support import mock_registry, order, schema, signup


def test_from_json_converts_logical_types_and_fills_defaults() -> None:
    out = from_json(
        schema("orders"),
        order(
            occurred_at=1_741_962_600_000,
            items=[{"product_id": "P", "variant_id": "V", "name": "N", "unit_price": {"amount": 19.99}}],
        ),
    )
    assert out["occurred_at"] == datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
    price = out["items"][0]["unit_price"]
    assert price == {"amount": Decimal("19.99"), "currency": "USD"}  # float read through str: exact
    assert out["items"][0]["quantity"] == 1 and out["shipment"] is None
    s = from_json(schema("signups"), signup(birthday="1990-02-03", occurred_at="2025-03-14T16:45:00+02:00"))
    assert s["birthday"] == date(1990, 2, 3)
    assert s["occurred_at"] == datetime(2025, 3, 14, 14, 45, tzinfo=UTC)
    assert from_json(schema("signups"), signup(birthday=7305))["birthday"] == date(1990, 1, 1)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (order(kind="ORDER_TELEPORTED"), r"kind: expected one of PRODUCT_VIEWED"),
        (order(customer={"id": "c", "phon": "1"}), r"customer: 'phon' is not a field of Customer"),
        (order(occurred_at="2025-03-14 14:30"), r"occurred_at: timestamp needs a UTC offset"),
        (order(occurred_at="yesterday"), r"occurred_at: timestamp must be ISO 8601"),
        (order(occurred_at=None), r"occurred_at: expected a timestamp string or epoch millis, got null"),
        (
            order(
                items=[{"product_id": "P", "variant_id": "V", "name": "N", "unit_price": {"amount": "abc"}}]
            ),
            r"items\[0\].unit_price.amount: not a decimal number",
        ),
        (
            order(
                items=[{"product_id": "P", "variant_id": "V", "name": "N", "unit_price": {"amount": True}}]
            ),
            r"amount: expected a decimal number or string, got boolean",
        ),
        (order(items={"product_id": "P"}), r"items: expected an array, got object"),
        (order(customer="c1"), r"customer: expected an object, got string"),
        (order(order_id=5), r"order_id: expected string, got number"),
        ({"kind": "ORDER_PLACED"}, r"event_id: required field is missing"),
        (signup(birthday="03/02/1990"), r"birthday: date must be YYYY-MM-DD"),
        (signup(attributes=["a"]), r"attributes: expected an object \(map\)"),
    ],
)
def test_from_json_errors_name_the_field(record: dict[str, Any], message: str) -> None:
    topic = "signups" if "channel" in record and "consent" in record else "orders"
    with pytest.raises(DecodeError, match=message) as err:
        from_json(schema(topic), record)
    assert err.value.reason == "incompatible"


def test_schema_violations_found_by_fastavro_do_not_quote_values() -> None:
    from tests.unit.avro_rules_support import loyalty

    with pytest.raises(DecodeError) as err:
        from_json(schema("loyalty"), loyalty(points_delta=2**40))  # too big for an Avro int
    assert (
        str(err.value)
        == "record does not fit loyalty.avsc: LoyaltyEvent.points_delta: a int does not fit int"
    )
    with pytest.raises(EncodeError) as enc_err:
        Encoder(schema("orders"), Encoding.RAW).encode(
            {**from_json(schema("orders"), order()), "customer": {"id": 5, "phone": "+12015550123"}}
        )
    assert "+1201" not in str(enc_err.value) and "Customer.id" in str(enc_err.value)
    with pytest.raises(EncodeError) as enc_err:
        Encoder(schema("orders"), Encoding.RAW, check=False).encode({"kind": "SECRET-VALUE"})
    assert "SECRET" not in str(enc_err.value)


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(DecodeError, match="must be a JSON object, not array"):
        from_json(schema("orders"), [1, 2])


def test_to_json_is_the_inverse_of_from_json() -> None:
    record = from_json(schema("orders"), order())
    as_json = to_json(record)
    assert as_json["items"][0]["unit_price"]["amount"] == "24.00"
    assert as_json["occurred_at"] == "2025-03-14T14:30:00.000Z"
    assert from_json(schema("orders"), as_json) == record


def test_jsonable_and_rfc3339() -> None:
    value = {
        "d": date(2025, 1, 2),
        "t": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "n": [Decimal("1.50"), None],
        "tm": time(1, 2),
        "b": b"\x01\xff",
    }
    assert jsonable(value) == {
        "d": "2025-01-02",
        "t": "2025-01-02T03:04:05.000Z",
        "n": [Decimal("1.50"), None],
        "tm": "01:02:00",
        "b": "01ff",
    }
    assert rfc3339(datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05.000Z"  # naive = UTC


def test_encoder_rejects_records_that_do_not_fit() -> None:
    enc = Encoder(schema("orders"), Encoding.RAW)
    with pytest.raises(EncodeError, match="does not match the schema"):
        enc.encode({"kind": "ORDER_PLACED"})
    unchecked = Encoder(schema("orders"), Encoding.RAW, check=False)
    with pytest.raises(EncodeError, match="does not match the schema"):
        unchecked.encode({"kind": "NOPE"})


def test_confluent_encoder_needs_a_registry_and_registers_once() -> None:
    with pytest.raises(ConfigError, match="needs a schema registry client"):
        Encoder(schema("orders"), Encoding.CONFLUENT)
    client = mock_registry()
    enc = Encoder(schema("orders"), Encoding.CONFLUENT, registry_client=client, subject="orders-value")
    assert enc.schema_id is None
    record = from_json(schema("orders"), order())
    first, second = enc.encode(record), enc.encode(record)
    assert first == second and first[:5] == b"\x00" + enc.register().to_bytes(4, "big")
    assert client.get_latest_version("orders-value").schema_id == enc.schema_id


class _Refusing:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get_schema(self, schema_id: int) -> Any:
        raise self.exc

    def register_schema(self, subject_name: str, schema: Any) -> int:
        raise self.exc


def test_encoder_registry_failures() -> None:
    record = from_json(schema("orders"), order())
    refused = Encoder(
        schema("orders"),
        Encoding.CONFLUENT,
        registry_client=_Refusing(SchemaRegistryError(409, 409, "incompatible")),
        subject="orders-value",
    )
    with pytest.raises(EncodeError, match="refused the schema for orders-value"):
        refused.encode(record)
    down = Encoder(
        schema("orders"),
        Encoding.CONFLUENT,
        registry_client=_Refusing(ConnectionRefusedError()),
        subject="orders-value",
    )
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        down.encode(record)
    sick = Encoder(
        schema("orders"),
        Encoding.CONFLUENT,
        registry_client=_Refusing(SchemaRegistryError(503, 50301, "down")),
        subject="orders-value",
    )
    with pytest.raises(RegistryUnavailableError, match="schema registry failed"):
        sick.encode(record)
