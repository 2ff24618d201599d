"""Kafka client settings and the conversion of consumed messages into what the engine works on.

The settings the engine's correctness depends on are forced, whatever ``kafka.client`` says: offsets are
committed by the engine only (no auto-commit, no auto offset store) and the assignment protocol is
cooperative-sticky (revocation drains and commits only the partitions that move). Everything else in
``kafka.client`` (SASL, TLS, tuning) passes through to librdkafka unchanged.

``group.protocol: consumer`` (KIP-848, the broker-driven protocol of Kafka 4.x) opts in to the new consumer
group protocol: assignments are then incremental by design and computed by the broker, so
``partition.assignment.strategy`` is not set (librdkafka refuses it with that protocol; the broker's
``group.consumer.assignors`` decides), and neither are the classic protocol's ``session.timeout.ms`` /
``heartbeat.interval.ms`` (the broker's ``group.consumer.session.timeout.ms`` applies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from connector.config import ConnectorConfig
from connector.observability.logs import kafka_client_logger
from connector.source.offsets import TP
from connector.source.protocols import KafkaMessage
from connector.types import SourceRecord

log = logging.getLogger(__name__)

# librdkafka's timestamp type for "no timestamp".
_TIMESTAMP_NOT_AVAILABLE = 0

FORCED_CONSUMER_SETTINGS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
}
# Defaults a user's ``kafka.client`` may override. librdkafka's own prefetch up to 100,000 messages per partition
# (64 MB in all), in fetches of up to 1 MB per partition: a backlog then reaches the engine one topic after
# another — the Attentive-shaped bench saw signups and privacy get no record for 16-21 s while orders filled the
# buffer — and a paused partition's prefetched messages are dropped and fetched again. Small per-partition
# fetches interleave the partitions and keep the prefetch (outside the engine's buffer bound) a few MB.
# A partition the engine held back and lets go again is fetched afresh; while the others are fully fetched
# the broker keeps a fetch open for fetch.wait.max.ms (500 by default), so its records came up to half a second
# late, twice in a row in the shaped bench (1.25 s without an orders record). 100 ms costs an idle connector
# ten empty fetches a second. A partition whose prefetch is over queued.min.messages is looked at again only
# after fetch.queue.backoff.ms (1 s by default), however fast the engine empties it: 20 ms keeps a backlog
# flowing (the look is local, no request to the broker).
DEFAULT_CONSUMER_SETTINGS: dict[str, Any] = {
    "max.partition.fetch.bytes": 65536,
    "queued.min.messages": 2000,
    "queued.max.messages.kbytes": 16384,
    "fetch.wait.max.ms": 100,
    "fetch.queue.backoff.ms": 20,
}
# Classic-protocol settings that librdkafka rejects under ``group.protocol=consumer`` (KIP-848).
_CLASSIC_ONLY = ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms")


def uses_consumer_protocol(client: dict[str, Any]) -> bool:
    """Whether ``kafka.client`` opts in to KIP-848's consumer group protocol (``group.protocol: consumer``)."""
    return str(client.get("group.protocol", "classic")).strip().lower() == "consumer"


def consumer_config(config: ConnectorConfig, *, group_id: str | None = None) -> dict[str, Any]:
    """librdkafka settings for the connector's consumer (``group_id`` overrides the configured group)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": config.kafka.bootstrap_servers,
        "group.id": group_id or config.kafka.group_id,
        "auto.offset.reset": "earliest",
        # Per-partition high watermarks and committed offsets for the consumer_lag gauge, cheaply.
        "statistics.interval.ms": 5000,
        "client.id": "attentive-connector",
        # librdkafka's own lines through the connector's logging, rate-limited (not raw on stderr).
        "logger": kafka_client_logger(),
        **DEFAULT_CONSUMER_SETTINGS,
    }
    conf.update(config.kafka.client)
    kip848 = uses_consumer_protocol(config.kafka.client)
    for key, value in FORCED_CONSUMER_SETTINGS.items():
        if kip848 and key in _CLASSIC_ONLY:
            continue
        if key in config.kafka.client and config.kafka.client[key] != value:
            log.warning("kafka.client.%s is ignored: the engine requires %s=%s", key, key, value)
        conf[key] = value
    if kip848:
        for key in _CLASSIC_ONLY:
            if conf.pop(key, None) is not None:
                log.warning(
                    "kafka.client.%s is ignored with group.protocol=consumer: the broker's group settings apply",
                    key,
                )
    return conf


def producer_config(config: ConnectorConfig) -> dict[str, Any]:
    """librdkafka settings for the dead-letter producer: idempotent, acknowledged by all in-sync replicas."""
    conf: dict[str, Any] = {
        "bootstrap.servers": config.kafka.bootstrap_servers,
        "linger.ms": 5,
        # Report a failed write within 30 s (default 5 min) so the stall is visible and retried sooner.
        "message.timeout.ms": 30000,
        "client.id": "attentive-connector-dlq",
        "logger": kafka_client_logger(),
    }
    conf.update({k: v for k, v in config.kafka.client.items() if k not in _CONSUMER_ONLY})
    conf["enable.idempotence"] = True
    conf["acks"] = "all"
    return conf


# Consumer settings a user may put in kafka.client that a producer would only warn about.
_CONSUMER_ONLY = frozenset(
    {
        "auto.offset.reset",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "max.partition.fetch.bytes",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "isolation.level",
        "group.instance.id",
        "group.protocol",
        "check.crcs",
        *FORCED_CONSUMER_SETTINGS,
    }
)


@dataclass(slots=True, eq=False)
class Inbound:
    """A consumed message as handed to the engine.

    ``tp``/``offset`` are where it is tracked and committed; ``record`` is what gets routed and delivered.
    They are the same record for the connector; for a DLQ replay ``tp``/``offset`` are the dead letter's
    own coordinates and ``record`` the original record rebuilt from its headers. ``record`` is None when
    there is nothing to do (``skip`` says why, e.g. filtered out of a replay): it finishes at once.
    """

    tp: TP
    offset: int
    record: SourceRecord | None
    size: int
    skip: str | None = None


def to_source_record(msg: KafkaMessage) -> SourceRecord:
    """A confluent-kafka message as a :class:`SourceRecord` (header values ``None`` become ``b""``)."""
    ts_type, ts = msg.timestamp()
    return SourceRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        headers=tuple((k, v if v is not None else b"") for k, v in (msg.headers() or ())),
        timestamp_ms=None if ts_type == _TIMESTAMP_NOT_AVAILABLE or ts < 0 else ts,
    )


def inbound(msg: KafkaMessage) -> Inbound:
    """The connector's transform: track and process the message itself."""
    record = to_source_record(msg)
    return Inbound(TP(record.topic, record.partition), record.offset, record, record.size)
