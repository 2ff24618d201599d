"""Schema evolution: records written with an older and a newer writer schema decode against the reader schema
(the topic's .avsc) and route to the same requests (registry path, confluent-kafka's ``mock://`` client)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from connector.avro.encoder import Encoder
from connector.config import Encoding
from connector.types import SourceRecord
from tests.unit.avro_rules_support import SHIPPED_RULES, decoded, mock_registry, order, router_for, schema


def _reader() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(schema("orders").path.read_text())
    return raw


def older_writer() -> dict[str, Any]:
    """v1 of the producer: no order_status_url/refund_amount/cancel_reason/channel yet, no product_url on
    items, and a customer without email."""
    raw = copy.deepcopy(_reader())
    raw["fields"] = [
        f
        for f in raw["fields"]
        if f["name"] not in ("order_status_url", "refund_amount", "cancel_reason", "channel")
    ]
    customer = next(f for f in raw["fields"] if f["name"] == "customer")
    customer["type"]["fields"] = [f for f in customer["type"]["fields"] if f["name"] != "email"]
    items = next(f for f in raw["fields"] if f["name"] == "items")
    line = items["type"]["items"]
    line["fields"] = [f for f in line["fields"] if f["name"] != "product_url"]
    return raw


def newer_writer() -> dict[str, Any]:
    """v3: adds fields the reader does not know (gift_message, a loyalty id on the customer, a coupon per item)
    and a new enum symbol the producer does not use in these records."""
    raw = copy.deepcopy(_reader())
    raw["fields"].insert(3, {"name": "gift_message", "type": ["null", "string"], "default": None})
    customer = next(f for f in raw["fields"] if f["name"] == "customer")
    customer["type"]["fields"].append({"name": "loyalty_id", "type": ["null", "string"], "default": None})
    items = next(f for f in raw["fields"] if f["name"] == "items")
    items["type"]["items"]["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})
    kind = next(f for f in raw["fields"] if f["name"] == "kind")
    kind["type"]["symbols"] = [*kind["type"]["symbols"], "ORDER_RETURNED"]
    return raw


def _records() -> dict[str, dict[str, Any]]:
    """The same order as each producer version would write it."""
    current = decoded("orders", order())
    old = copy.deepcopy(current)
    for k in ("order_status_url", "refund_amount", "cancel_reason", "channel"):
        old.pop(k)
    old["customer"].pop("email")
    for item in old["items"]:
        item.pop("product_url")
    new = copy.deepcopy(current)
    new["gift_message"] = "Happy birthday!"
    new["customer"]["loyalty_id"] = "L-77"
    for item in new["items"]:
        item["coupon"] = "SPRING10"
    return {"old": old, "current": current, "new": new}


def test_old_and_new_writers_decode_into_the_reader_shape_and_route_the_same(tmp_path: Path) -> None:
    client = mock_registry()
    router = router_for(
        tmp_path,
        SHIPPED_RULES,
        registry_client=client,
        topics={"orders": {"encoding": "confluent"}, "loyalty": {}, "signups": {}, "privacy": {}},
        registry_url="mock://unused",
    )
    writers = {"old": older_writer(), "current": _reader(), "new": newer_writer()}
    records = _records()
    results = {}
    ids = set()
    for version, writer in writers.items():
        enc = Encoder(writer, Encoding.CONFLUENT, registry_client=client, subject="orders-value")
        value = enc.encode(records[version])
        ids.add(enc.schema_id)
        out = router.decoders["orders"].decode(value)
        # Always the reader's fields, never the writer's extras; missing ones filled from reader defaults.
        assert set(out) == {f["name"] for f in _reader()["fields"]}
        assert "gift_message" not in out and "loyalty_id" not in out["customer"]
        assert "coupon" not in out["items"][0]
        results[version] = router.route(SourceRecord("orders", 0, 42, b"cust-1", value))
    assert len(ids) == 3  # three distinct writer schemas were really used
    assert out["customer"]["email"] == "ava@example.com"
    old_out = router.decoders["orders"].decode(
        Encoder(writers["old"], Encoding.CONFLUENT, registry_client=client, subject="orders-value").encode(
            records["old"]
        )
    )
    assert old_out["customer"]["email"] is None and old_out["channel"] == "WEB"  # reader defaults
    for version in ("old", "new"):
        assert results[version].error is None
        assert [c.rule for c in results[version].calls] == ["order-placed"]
    # The new writer carries the same data as the current one: identical requests.
    assert results["new"].calls == results["current"].calls
    # The old writer had no email: the same request minus the email.
    old_body = results["old"].calls[0].body
    current_body = copy.deepcopy(results["current"].calls[0].body)
    current_body["user"].pop("email")
    current_body["items"][0].pop("productUrl", None)
    assert old_body == current_body


def test_raw_topic_decodes_with_its_own_schema_only(tmp_path: Path) -> None:
    router = router_for(tmp_path, SHIPPED_RULES)
    value = Encoder(schema("orders"), Encoding.RAW).encode(decoded("orders", order()))
    result = router.route(SourceRecord("orders", 1, 7, b"cust-1", value))
    assert [c.record_id for c in result.calls] == ["orders/1/7"]
