"""The ``validate`` and ``route`` commands: the output contract users' scripts rely on."""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connector.attentive.endpoints import BY_PATH
from connector.attentive.jsonio import loads
from connector.attentive.spec import default_validator
from connector.avro.jsonrecords import from_json
from connector.errors import ConfigError
from connector.rules import tools, tools_route
from tests.unit.avro_rules_support import (
    EXAMPLES,
    REPO,
    SHIPPED_CONFIG,
    SHIPPED_RULES,
    order,
    schema,
    write_config,
)


def run_validate(*argv: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser()
    tools.add_arguments(parser)
    out = io.StringIO()
    rc = tools.main(parser.parse_args(list(argv)), out=out)
    return rc, out.getvalue().splitlines()


def run_route(*argv: str) -> tuple[int, list[dict[str, Any]], str]:
    parser = argparse.ArgumentParser()
    tools_route.add_arguments(parser)
    out = io.StringIO()
    rc = tools_route.main(parser.parse_args(list(argv)), out=out)
    text = out.getvalue()
    return rc, [loads(line) for line in text.splitlines()], text


# --- validate -----------------------------------------------------------------------------------------


def test_validate_is_clean_on_the_shipped_config() -> None:
    assert run_validate("--config", str(SHIPPED_CONFIG)) == (0, ["ok: 18 rules, 4 topics"])


def test_validate_default_config_path_is_the_shipped_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert run_validate() == (0, ["ok: 18 rules, 4 topics"])


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED_RULES.read_text()
    assert old in text
    rules = tmp_path / "rules.yaml"
    rules.write_text(text.replace(old, new, 1))
    return write_config(tmp_path, rules)


def test_validate_catches_a_misspelled_field(tmp_path: Path) -> None:
    config = _broken_copy(
        tmp_path, "trackingNumber: shipment.tracking_number", "trackingNumber: shipment.tracking_numbr"
    )
    rc, lines = run_validate("--config", str(config))
    assert rc == 1
    assert lines == [
        f"{tmp_path / 'rules.yaml'}: rule 'order-shipped': fields.properties.trackingNumber: "
        "'shipment.tracking_numbr': field 'tracking_numbr' is not in record Shipment of orders.avsc "
        "(fields: carrier, tracking_number, tracking_url, estimated_delivery); did you mean 'tracking_number'?"
    ]


def test_validate_catches_a_type_mismatch(tmp_path: Path) -> None:
    config = _broken_copy(tmp_path, "price: unit_price.amount", "price: unit_price.currency")
    rc, lines = run_validate("--config", str(config))
    assert rc == 1
    # The items mapping is a YAML anchor shared by three rules: each is reported.
    assert lines == [
        f"{tmp_path / 'rules.yaml'}: rule '{rule}': items.price: 'unit_price.currency' is string in orders.avsc; "
        "Attentive expects a number (decimal, int, long, float or double)"
        for rule in ("product-viewed", "added-to-cart", "order-placed")
    ]


def test_validate_catches_a_missing_required_field(tmp_path: Path) -> None:
    config = _broken_copy(tmp_path, "      type: {literal: Order Delivered}\n", "")
    rc, lines = run_validate("--config", str(config))
    assert (rc, lines) == (
        1,
        [
            f"{tmp_path / 'rules.yaml'}: rule 'order-delivered': custom_event needs fields.type (the event name, "
            "e.g. {literal: Order Shipped})"
        ],
    )


def test_validate_reports_config_and_schema_problems(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        SHIPPED_RULES,
        topics={
            "orders": {"encoding": "confluent", "key_field": "customer.idd"},
            "loyalty": {},
            "signups": {},
            "privacy": {},
        },
    )
    rc, lines = run_validate("--config", str(config))
    assert rc == 1
    assert lines == [
        f"{config}: topics.orders.encoding is confluent but kafka.schema_registry.url is not set (set it, or "
        "SCHEMA_REGISTRY_URL; or use encoding: raw)",
        f"{config}: topics.orders.key_field: 'customer.idd': field 'idd' is not in record Customer of orders.avsc "
        "(fields: id, phone, email); did you mean 'id'?",
    ]
    bad_schema = tmp_path / "broken.avsc"
    bad_schema.write_text("{")
    cfg = tmp_path / "c2.yaml"
    cfg.write_text(f"topics:\n  orders: {{schema: {bad_schema}}}\nrules: {SHIPPED_RULES}\n")
    rc, lines = run_validate("--config", str(cfg))
    assert rc == 1 and lines == [
        f"topics.orders.schema: {bad_schema}: not valid JSON (line 1, column 2): "
        "Expecting property name enclosed in double quotes"
    ]
    rc, lines = run_validate("--config", str(tmp_path / "nope.yaml"))
    assert rc == 1 and lines == [
        f"{tmp_path / 'nope.yaml'}: cannot read config file: No such file or directory"
    ]


# --- route --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["orders", "loyalty", "signups", "privacy"])
def test_examples_route_cleanly(topic: str) -> None:
    rc, lines, _ = run_route(
        "--config",
        str(SHIPPED_CONFIG),
        "--topic",
        topic,
        "--input",
        str(EXAMPLES / f"{topic}.jsonl"),
        "--format",
        "json",
    )
    assert rc == 0
    n_records = sum(1 for line in (EXAMPLES / f"{topic}.jsonl").read_text().splitlines() if line.strip())
    assert {line["record"] for line in lines} == set(range(1, n_records + 1))
    validator = default_validator()
    for line in lines:
        assert list(line) == ["record", "rule", "method", "path", "body"], line
        assert line["method"] == "POST"
        assert validator.validate(BY_PATH[line["path"]], line["body"]) == []


def test_route_output_contract_exactly(tmp_path: Path) -> None:
    records = [
        order(),  # 1: one request
        order(kind="ORDER_SHIPPED", customer={"id": "c", "phone": "12345"}),  # 2: invalid phone
        {"kind": "ORDER_PLACED"},  # 3: does not fit the schema
        order(
            kind="ORDER_SHIPPED",
            customer={"id": "c2", "email": "x@example.com"},
            order_id="ORD-9",
            shipment={"carrier": "UPS", "tracking_number": "1Z"},
            items=[],
        ),  # 4
    ]
    skip_rules = tmp_path / "rules.yaml"
    skip_rules.write_text(
        SHIPPED_RULES.read_text().replace("kind == 'ORDER_PLACED'", "kind == 'ORDER_PLACED' && `false`")
    )
    config = write_config(tmp_path, skip_rules)
    data = tmp_path / "in.jsonl"
    data.write_text("# a comment\n" + "\n".join(json.dumps(r) for r in records) + "\n\nnot json\n")
    rc, lines, text = run_route(
        "--config",
        str(config),
        "--topic",
        "orders",
        "--input",
        str(data),
        "--format",
        "json",
        "--partition",
        "3",
        "--offset",
        "100",
    )
    assert rc == 1
    assert lines[0] == {"record": 1, "skipped": True}
    assert list(lines[1]) == ["record", "rule", "error"] and lines[1]["record"] == 2
    assert lines[1]["rule"] == "order-shipped" and lines[1]["error"].startswith(
        "custom_event: $.user.phone: "
    )
    assert lines[2]["record"] == 3 and list(lines[2]) == ["record", "error"]
    assert lines[2]["error"].startswith(
        "record does not fit orders.avsc: event_id: required field is missing"
    )
    assert lines[3] == {
        "record": 4,
        "rule": "order-shipped",
        "method": "POST",
        "path": "/v1/events/custom",
        "body": {
            "type": "Order Shipped",
            "properties": {"orderId": "ORD-9", "carrier": "UPS", "trackingNumber": "1Z", "itemCount": 0},
            "externalEventId": "0b6f3bd8-8f0e-4f39-9a43-3f1d0d7d2a11",
            "occurredAt": "2025-03-14T14:30:00.000Z",
            "user": {"email": "x@example.com", "externalIdentifiers": {"clientUserId": "c2"}},
        },
    }
    assert lines[4]["record"] == 5 and lines[4]["error"].startswith("not valid JSON")
    assert len(lines) == 5
    assert text.splitlines()[0] == '{"record":1,"skipped":true}'  # one compact JSON object per line


def test_route_avro_container_file(tmp_path: Path) -> None:
    examples = [
        from_json(schema("orders"), json.loads(line))
        for line in (EXAMPLES / "orders.jsonl").read_text().splitlines()
    ]
    data = tmp_path / "orders.avro"
    with data.open("wb") as fh:
        fastavro.writer(fh, schema("orders").writable, examples)
    rc, lines, _ = run_route("--config", str(SHIPPED_CONFIG), "--topic", "orders", "--input", str(data))
    assert rc == 0
    _, json_lines, _ = run_route(
        "--config",
        str(SHIPPED_CONFIG),
        "--topic",
        "orders",
        "--format",
        "json",
        "--input",
        str(EXAMPLES / "orders.jsonl"),
    )
    assert lines == json_lines  # the same records in either format route the same


def test_route_applies_max_age_only_with_now() -> None:
    args = (
        "--config",
        str(SHIPPED_CONFIG),
        "--topic",
        "orders",
        "--format",
        "json",
        "--input",
        str(EXAMPLES / "orders.jsonl"),
    )
    _, lines, _ = run_route(*args, "--now", "2025-03-16T00:00:00Z")
    assert lines[0] == {"record": 1, "rule": "product-viewed", "skipped": True, "reason": "stale"}
    assert lines[1] == {"record": 2, "rule": "added-to-cart", "skipped": True, "reason": "stale"}
    assert lines[2]["rule"] == "order-placed" and "body" in lines[2]  # no max_age on purchases
    _, same_day, _ = run_route(*args, "--now", str(1741964400000))  # 2025-03-14T15:00Z as epoch millis
    assert all("body" in line for line in same_day)


def test_route_input_and_argument_errors(tmp_path: Path) -> None:
    base = ("--config", str(SHIPPED_CONFIG))
    with pytest.raises(ConfigError, match="--input .*: no such file"):
        run_route(*base, "--topic", "orders", "--input", str(tmp_path / "missing.jsonl"), "--format", "json")
    with pytest.raises(ConfigError, match="--topic 'order' is not configured"):
        run_route(*base, "--topic", "order", "--input", str(EXAMPLES / "orders.jsonl"))
    not_avro = tmp_path / "x.avro"
    shutil.copy(EXAMPLES / "orders.jsonl", not_avro)
    with pytest.raises(ConfigError, match="not an Avro object container file"):
        run_route(*base, "--topic", "orders", "--input", str(not_avro))
    with pytest.raises(ConfigError, match="--now: 'tomorrow' is not RFC 3339"):
        run_route(*base, "--topic", "orders", "--input", str(EXAMPLES / "orders.jsonl"), "--now", "tomorrow")
    with pytest.raises(ConfigError, match="--now: add a UTC offset"):
        run_route(
            *base, "--topic", "orders", "--input", str(EXAMPLES / "orders.jsonl"), "--now", "2025-01-01T00:00"
        )
