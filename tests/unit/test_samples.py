"""Sample events: realistic, reproducible, routable through the shipped rules; and producing them."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException

from connector.attentive.jsonio import dumps, loads
from connector.attentive.spec import default_validator
from connector.avro.decoder import Decoder
from connector.avro.encoder import Encoder
from connector.avro.registry import WriterSchemas
from connector.config import Encoding, load_config
from connector.errors import InvalidPhoneError
from connector.samples import generate, produce
from connector.types import SourceRecord
from tests.unit.avro_rules_support import NOW, SHIPPED_RULES, mock_registry, router_for, schema, write_config


@pytest.mark.parametrize("topic", ["orders", "loyalty", "signups", "privacy"])
def test_samples_are_reproducible_and_recent(topic: str) -> None:
    a = list(generate(topic, 50, seed=3, now=NOW))
    assert a == list(generate(topic, 50, seed=3, now=NOW))
    assert a != list(generate(topic, 50, seed=4, now=NOW))
    for record in a:
        assert NOW - timedelta(hours=1) <= record["occurred_at"] <= NOW
    assert len({r["customer"]["id"] for r in a}) > 5


@pytest.mark.parametrize("topic", ["orders", "loyalty", "signups", "privacy"])
def test_every_sample_routes_to_valid_requests(topic: str, tmp_path: Path) -> None:
    router = router_for(tmp_path, SHIPPED_RULES, clock=lambda: NOW.timestamp())
    encoder = Encoder(schema(topic), Encoding.RAW)
    validator = default_validator()
    rules: Counter[str] = Counter()
    for i, record in enumerate(generate(topic, 400, seed=11, now=NOW)):
        result = router.route(SourceRecord(topic, 0, i, b"k", encoder.encode(record)))
        assert result.error is None, result.error
        assert result.calls, record
        for call in result.calls:
            assert validator.validate(call.endpoint, loads(dumps(call.body))) == []
            rules[call.rule] += 1
    expected = {
        "orders": {
            "product-viewed",
            "added-to-cart",
            "order-placed",
            "order-shipped",
            "order-delivered",
            "order-cancelled",
            "order-refunded",
        },
        "loyalty": {"loyalty-profile", "loyalty-event"},
        "signups": {
            "link-customer-id",
            "sms-opt-in",
            "sms-opt-in-by-locale",
            "email-opt-in",
            "email-opt-in-by-locale",
            "signup-profile",
            "sms-opt-out",
            "email-opt-out",
        },
        "privacy": {"privacy-delete"},
    }[topic]
    assert set(rules) == expected  # every rule of the topic is exercised by a realistic mix


def test_invalid_ratio_mixes_in_unroutable_phones(tmp_path: Path) -> None:
    router = router_for(tmp_path, SHIPPED_RULES, clock=lambda: NOW.timestamp())
    encoder = Encoder(schema("loyalty"), Encoding.RAW)
    errors = [
        router.route(SourceRecord("loyalty", 0, i, None, encoder.encode(r))).error
        for i, r in enumerate(generate("loyalty", 200, seed=1, now=NOW, invalid_ratio=0.3))
    ]
    bad = [e for e in errors if e is not None]
    assert 20 < len(bad) < 120 and all(isinstance(e, InvalidPhoneError) for e in bad)


def test_unknown_topic_kind() -> None:
    with pytest.raises(ValueError, match="no samples for topic 'payments'"):
        list(generate("payments", 1))
    assert next(generate("OrderEvent", 1, now=NOW))["kind"]  # by schema name too


class FakeProducer:
    """Records produce() calls; acknowledges on poll/flush like librdkafka; can refuse or fail deliveries."""

    def __init__(self, *, buffer_full_times: int = 0, fail: bool = False, unflushed: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[Any] = []
        self.buffer_full_times = buffer_full_times
        self.fail = fail
        self.unflushed = unflushed
        self.polls = 0

    def produce(self, topic: str, *, key: bytes | None, value: bytes, on_delivery: Any) -> None:
        if self.buffer_full_times:
            self.buffer_full_times -= 1
            raise BufferError("Local: Queue full")
        self.sent.append((topic, key, value))
        self.pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        for cb in self.pending:
            cb("Broker: boom" if self.fail else None, None)
        self.pending.clear()
        return self.unflushed


def test_produce_encodes_as_configured_and_keys_by_customer(tmp_path: Path) -> None:
    client = mock_registry()
    config = load_config(
        write_config(
            tmp_path,
            SHIPPED_RULES,
            registry_url="mock://x",
            topics={"orders": {"encoding": "confluent"}, "signups": {}},
        ),
        env={},
    )
    fake = FakeProducer(buffer_full_times=2)
    records = list(generate("orders", 20, seed=5, now=NOW))
    assert (
        produce(config, "orders", records, bootstrap="unused:1", registry_client=client, producer=fake) == 20
    )
    assert fake.polls >= 2  # waited for room when the local queue was full
    decoder = Decoder("orders", schema("orders"), Encoding.CONFLUENT, writer_schemas=WriterSchemas(client))
    for (topic, key, value), record in zip(fake.sent, records, strict=True):
        assert topic == "orders" and key == record["customer"]["id"].encode()
        assert decoder.decode(value) == record
    raw = FakeProducer()
    produce(config, "signups", generate("signups", 3, now=NOW), bootstrap="unused:1", producer=raw)
    assert all(v[0] != 0 for _, _, v in raw.sent)  # raw Avro, no Confluent header


def test_produce_reports_failed_deliveries(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, SHIPPED_RULES), env={})
    with pytest.raises(KafkaException, match="producing to loyalty failed: Broker: boom"):
        produce(
            config,
            "loyalty",
            generate("loyalty", 3, now=NOW),
            bootstrap="x:1",
            producer=FakeProducer(fail=True),
        )
    with pytest.raises(KafkaException, match="2 records not acknowledged"):
        produce(
            config,
            "loyalty",
            generate("loyalty", 3, now=NOW),
            bootstrap="x:1",
            producer=FakeProducer(unflushed=2),
        )


def _cli(*argv: str) -> int:
    import argparse

    from connector import samples

    parser = argparse.ArgumentParser()
    samples.add_arguments(parser)
    return samples.main(parser.parse_args(list(argv)))


def test_produce_samples_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.errors import ConfigError

    config = write_config(
        tmp_path,
        SHIPPED_RULES,
        registry_url="http://127.0.0.1:9",
        topics={"orders": {"encoding": "confluent"}, "loyalty": {}, "signups": {}},
    )
    # registry unreachable while registering the schema: a clear error and exit 1, nothing produced
    assert (
        _cli(
            "--config", str(config), "--topic", "orders", "--count", "1", "--bootstrap-servers", "127.0.0.1:9"
        )
        == 1
    )
    assert capsys.readouterr().err.startswith("error: orders: schema registry unreachable")
    with pytest.raises(ConfigError, match="--topic 'payments' is not configured"):
        _cli("--config", str(config), "--topic", "payments")
    with pytest.raises(ConfigError, match="--count must be 0 or more"):
        _cli("--config", str(config), "--count", "-1")
