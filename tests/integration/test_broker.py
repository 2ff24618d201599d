"""The project's real broker: records produced to a topic created per test come back from a consumer."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def test_produce_and_consume_on_the_real_broker(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        producer.produce(topic, key=str(i % 3).encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(100):
            for msg in consumer.consume(50, timeout=0.5):
                value = msg.value()
                assert msg.error() is None and value is not None
                got.append(value)
            if len(got) >= 10:
                break
    finally:
        consumer.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(10))


def test_topics_are_unique_per_call(make_topic: Callable[..., str]) -> None:
    assert make_topic() != make_topic()
