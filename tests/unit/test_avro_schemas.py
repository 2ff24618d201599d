"""The shipped topic schemas, schema loading errors, and the type tree the rule checker walks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.avro.schema import load_schema, type_tree
from connector.errors import ConfigError
from tests.unit.avro_rules_support import SCHEMAS


def _logical_types(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("logicalType"), str):
            found.add(node["logicalType"])
        for v in node.values():
            found |= _logical_types(v)
    elif isinstance(node, list):
        for v in node:
            found |= _logical_types(v)
    return found


@pytest.mark.parametrize("topic", ["orders", "loyalty", "signups"])
def test_shipped_schemas_parse_and_use_realistic_avro(topic: str) -> None:
    s = load_schema(SCHEMAS / f"{topic}.avsc")
    assert s.raw["namespace"] == "com.retailer.events"
    kinds = {f.kind for f in s.type.fields.values()}
    assert "enum" in kinds or "record" in kinds
    assert s.type.fields["occurred_at"].kind == "timestamp"
    # every nullable field has a null default (producers may leave it out)
    for f in s.raw["fields"]:
        if isinstance(f["type"], list) and "null" in f["type"]:
            assert f.get("default", "missing") is None, f["name"]


def test_orders_schema_has_every_construct_the_issue_asks_for() -> None:
    s = load_schema(SCHEMAS / "orders.avsc")
    t = s.type
    assert t.fields["kind"].symbols == (
        "PRODUCT_VIEWED",
        "ADDED_TO_CART",
        "ORDER_PLACED",
        "ORDER_SHIPPED",
        "ORDER_DELIVERED",
        "ORDER_CANCELLED",
        "ORDER_REFUNDED",
    )
    assert t.fields["order_id"].nullable
    assert set(t.fields["customer"].fields) == {"id", "phone", "email"}
    item = t.fields["items"].items
    assert item is not None and item.kind == "record"
    assert item.fields["unit_price"].fields["amount"].kind == "number"  # decimal
    assert t.fields["totals"].non_null().kind == "record"
    shipment = t.fields["shipment"].non_null()
    assert shipment.fields["estimated_delivery"].non_null().kind == "date"
    assert {"decimal", "timestamp-millis", "date", "uuid"} <= _logical_types(s.raw)


def test_loyalty_and_signups_schemas() -> None:
    loyalty = load_schema(SCHEMAS / "loyalty.avsc").type
    assert loyalty.fields["kind"].symbols == (
        "POINTS_EARNED",
        "POINTS_REDEEMED",
        "POINTS_EXPIRED",
        "TIER_CHANGED",
    )
    assert loyalty.fields["previous_tier"].non_null().kind == "enum"  # a named-type reference
    signups = load_schema(SCHEMAS / "signups.avsc").type
    assert signups.fields["channel"].symbols == ("SMS", "EMAIL")
    assert signups.fields["consent"].fields["status"].symbols == ("OPT_IN", "OPT_OUT")
    assert signups.fields["birthday"].non_null().kind == "date"
    assert signups.fields["attributes"].kind == "map"
    assert signups.fields["interests"].describe() == "array<string>"


def test_load_schema_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.avsc"
    with pytest.raises(ConfigError, match=r"nope\.avsc: cannot read Avro schema"):
        load_schema(missing)
    bad_json = tmp_path / "bad.avsc"
    bad_json.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.avsc: not valid JSON \(line 1"):
        load_schema(bad_json)
    not_record = tmp_path / "enum.avsc"
    not_record.write_text(json.dumps({"type": "enum", "name": "E", "symbols": ["A"]}))
    with pytest.raises(ConfigError, match="must be an Avro record"):
        load_schema(not_record)
    bad_avro = tmp_path / "badavro.avsc"
    bad_avro.write_text(
        json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nosuch"}]})
    )
    with pytest.raises(ConfigError, match="not a valid Avro schema"):
        load_schema(bad_avro)


def test_type_tree_handles_recursion_and_named_references() -> None:
    t = type_tree(
        {
            "type": "record",
            "name": "Node",
            "namespace": "x",
            "fields": [
                {"name": "value", "type": "long"},
                {"name": "next", "type": ["null", "Node"], "default": None},
                {
                    "name": "tags",
                    "type": {"type": "map", "values": {"type": "fixed", "name": "F", "size": 2}},
                },
            ],
        }
    )
    assert t.fields["next"].non_null() is t
    assert t.fields["tags"].describe() == "map<bytes>"
    assert t.fields["value"].kinds() == {"integer"}
    assert t.fields["next"].kinds() == {"null", "record"}
