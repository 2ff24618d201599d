"""Avro over a real broker and a real Schema Registry (Apicurio, Confluent-compatible API): produce-samples,
decode, schema evolution under the registry's enforced compatibility, outage.

Producers here use confluent-kafka's own ``AvroSerializer`` (what users run). The outage test needs a registry
that answers 503 on demand, which a real one cannot be told to do: it talks to the real registry through
:class:`tests.integration.registry_proxy.RegistryProxy`, a forwarding proxy with a "sick" switch.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from connector import samples
from connector.config import load_config
from connector.errors import DecodeError, RegistryUnavailableError
from connector.rules.router import Router
from connector.types import SourceRecord
from tests.integration.engine_support import consumed_record
from tests.integration.registry_proxy import RegistryProxy
from tests.unit.avro_rules_support import SCHEMAS, SHIPPED_RULES, decoded, order, write_config

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(num_messages=500, timeout=0.5) if m.error() is None)
    finally:
        consumer.close()
    assert len(got) == count, f"consumed {len(got)} of {count} from {topic}"
    return got


def shipped_rules_for(tmp_path: Path, topics: dict[str, str]) -> Path:
    """The shipped rules for the given topics only, renamed (shipped topic -> test topic)."""
    table = yaml.safe_load(SHIPPED_RULES.read_text())  # anchors resolved
    rules = []
    for rule in table["rules"]:
        mapped = [topics[t] for t in rule["topics"] if t in topics]
        if mapped:
            rules.append({**rule, "topics": mapped})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    return path


def _config(tmp_path: Path, orders: str, signups: str, registry_url: str, bootstrap: str) -> Path:
    path = write_config(
        tmp_path,
        shipped_rules_for(tmp_path, {"orders": orders, "signups": signups}),
        topics={
            orders: {"schema_of": "orders", "encoding": "confluent", "key_field": "customer.id"},
            signups: {"schema_of": "signups", "encoding": "raw"},
        },
        registry_url=registry_url,
    )
    text = path.read_text().replace("127.0.0.1:1", bootstrap)
    path.write_text(text)
    return path


def test_produce_samples_then_decode_and_route(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    schema_registry_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    orders, signups = make_topic(partitions=2, prefix="orders"), make_topic(partitions=2, prefix="signups")
    config_path = _config(tmp_path, orders, signups, schema_registry_url, kafka_bootstrap)
    parser = argparse.ArgumentParser()
    samples.add_arguments(parser)
    rc = samples.main(
        parser.parse_args(
            [
                "--config",
                str(config_path),
                "--topic",
                orders,
                "--topic",
                signups,
                "--count",
                "40",
                "--seed",
                "9",
            ]
        )
    )
    assert rc == 0
    assert capsys.readouterr().out.splitlines() == [
        f"produced 40 records to {orders}",
        f"produced 40 records to {signups}",
    ]
    # the confluent topic's schema was registered under the TopicNameStrategy subject, and every record
    # carries that registry id in its frame
    client = SchemaRegistryClient({"url": schema_registry_url})
    registered = client.get_latest_version(f"{orders}-value")
    assert registered.version == 1
    # confluent-kafka's own deserializer reads what produce-samples wrote (the same wire format users run)
    deserialize = AvroDeserializer(client)
    router = Router.from_config(load_config(config_path, env={}))
    for topic in (orders, signups):
        msgs = consume_all(kafka_bootstrap, topic, 40)
        for msg in msgs:
            value, key = msg.value(), msg.key()
            assert value is not None and key is not None
            assert (value[0] == 0) == (topic == orders)  # framed only where configured
            if topic == orders:
                assert int.from_bytes(value[1:5], "big") == registered.schema_id
                theirs = deserialize(value, SerializationContext(topic, MessageField.VALUE))
                assert theirs["event_id"] and theirs["customer"]
            result = router.route(consumed_record(msg))
            assert result.error is None and result.calls, result
            assert result.ordering_key == key.decode()
            for call in result.calls:
                assert call.record_id.startswith(f"{topic}/{msg.partition()}/{msg.offset()}")


def _evolve(raw: dict[str, Any], *, old: bool) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    if old:
        out["fields"] = [f for f in out["fields"] if f["name"] not in ("order_status_url", "channel")]
    else:
        out["fields"].append({"name": "gift_message", "type": ["null", "string"], "default": None})
    return out


def _serializer(
    client: SchemaRegistryClient, schema: dict[str, Any]
) -> Callable[[dict[str, Any], SerializationContext], bytes]:
    """confluent-kafka's serializer, registering its schema under ``<topic>-value`` on first use."""
    serialize = AvroSerializer(client, json.dumps(schema), conf={"auto.register.schemas": True})

    def encode(record: dict[str, Any], ctx: SerializationContext) -> bytes:
        framed = serialize(record, ctx)
        assert framed is not None  # None only for a None record
        return framed

    return encode


def test_schema_evolution_under_the_registrys_compatibility_rule(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, schema_registry_url: str
) -> None:
    orders, signups = make_topic(partitions=1, prefix="orders"), make_topic(partitions=1, prefix="signups")
    config_path = _config(tmp_path, orders, signups, schema_registry_url, kafka_bootstrap)
    config = load_config(config_path, env={})
    subject = f"{orders}-value"
    reader = json.loads((SCHEMAS / "orders.avsc").read_text())
    client = SchemaRegistryClient({"url": schema_registry_url, "max.retries": 0})
    client.set_compatibility(subject, "BACKWARD")  # Confluent's default, said explicitly for this subject
    ctx = SerializationContext(orders, MessageField.VALUE)
    record = decoded("orders", order())
    old_record = {k: v for k, v in record.items() if k not in ("order_status_url", "channel")}
    new_record = {**record, "gift_message": "enjoy"}
    # Each step adds fields with defaults: a BACKWARD-compatible evolution the registry accepts.
    values = [
        _serializer(client, _evolve(reader, old=True))(old_record, ctx),
        _serializer(client, reader)(record, ctx),
        _serializer(client, _evolve(reader, old=False))(new_record, ctx),
    ]
    assert len({v[1:5] for v in values}) == 3  # three writer schema ids
    assert client.get_versions(subject) == [1, 2, 3]

    # Incompatible next versions are refused by the registry itself (409) and leave the subject as it was.
    required = copy.deepcopy(reader)
    required["fields"].append({"name": "loyalty_tier", "type": "string"})  # no default: old data unreadable
    retyped = copy.deepcopy(reader)
    next(f for f in retyped["fields"] if f["name"] == "cancel_reason")["type"] = ["null", "long"]
    for bad in (required, retyped):
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(json.dumps(bad), "AVRO"))
        assert refused.value.http_status_code == 409, refused.value
    with pytest.raises(SchemaRegistryError) as refused_by_serializer:
        _serializer(client, required)({**record, "loyalty_tier": "gold"}, ctx)
    assert refused_by_serializer.value.http_status_code == 409
    assert client.get_versions(subject) == [1, 2, 3]

    producer = Producer(samples.producer_config(config, kafka_bootstrap))
    for v in values:
        producer.produce(orders, key=b"cust-1", value=v)
    assert producer.flush(30) == 0
    # The connector decodes every writer version with the topic's reader schema (schemas/orders.avsc).
    router = Router.from_config(config)
    results = [router.route(consumed_record(m)) for m in consume_all(kafka_bootstrap, orders, 3)]
    bodies = [r.calls[0].body for r in results]
    assert all(r.error is None for r in results)
    assert bodies[1] == bodies[2]  # the newer writer's extra field is ignored
    assert bodies[0]["salesChannel"] == {"channelType": "WEB"}  # reader default fills the old writer's gap
    assert {k: v for k, v in bodies[0].items() if k != "salesChannel"} == {
        k: v for k, v in bodies[1].items() if k != "salesChannel"
    }


def test_registry_outage_is_transient_and_unknown_ids_permanent(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Any, schema_registry_url: str
) -> None:
    """Fault injection: the real registry behind :class:`RegistryProxy` (503 on demand, then gone)."""
    orders, signups = make_topic(partitions=1, prefix="orders"), make_topic(partitions=1, prefix="signups")
    client = SchemaRegistryClient({"url": schema_registry_url})
    value = _serializer(client, json.loads((SCHEMAS / "orders.avsc").read_text()))(
        decoded("orders", order()), SerializationContext(orders, MessageField.VALUE)
    )
    other_id = client.register_schema(f"{orders}-unrelated", Schema(json.dumps({"type": "string"}), "AVRO"))
    with RegistryProxy(schema_registry_url) as proxy:
        config_path = _config(tmp_path, orders, signups, proxy.url, kafka_bootstrap)
        # The registry client from the config, with retries off so the outage shows at once.
        text = config_path.read_text().replace(
            f"url: {proxy.url}", f"url: {proxy.url}\n    client: {{max.retries: '0'}}"
        )
        config_path.write_text(text)
        config = load_config(config_path, env={})
        router = Router.from_config(config)
        proxy.fail_with(503)
        record = SourceRecord(orders, 0, 0, b"k", value)
        with pytest.raises(RegistryUnavailableError):
            router.route(record)
        assert proxy.request_count >= 1 and proxy.forwarded == 0
        assert router.needs_registry(record)  # nothing cached; retry later
        proxy.fail_with(None)
        assert router.route(record).calls  # healed: the same record now routes, fetched from the registry
        assert proxy.forwarded >= 1
        never_issued = (2**31 - 1).to_bytes(4, "big")
        unknown = router.route(SourceRecord(orders, 0, 1, b"k", b"\x00" + never_issued + value[5:]))
        assert isinstance(unknown.error, DecodeError) and unknown.error.reason == "unknown_schema"
        mismatched = router.route(
            SourceRecord(orders, 0, 2, b"k", b"\x00" + other_id.to_bytes(4, "big") + value[5:])
        )
        assert isinstance(mismatched.error, DecodeError) and mismatched.error.reason == "incompatible"
    # registry gone (the proxy's port is closed: connection refused): transient, not a dead letter
    fresh = Router.from_config(load_config(config_path, env={}))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        fresh.route(SourceRecord(orders, 0, 0, b"k", value))
    assert time.monotonic() - started < 10
