"""The Kafka source: the poll thread, offsets and their commit watermark, flow control, consumer seams."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.source.flow import Hold, HoldReason
    from connector.source.kafka import Inbound, consumer_config, producer_config
    from connector.source.offsets import TP, Commit, OffsetTracker
    from connector.source.poller import Poller, PollSettings
    from connector.source.probe import cluster_topics
    from connector.source.protocols import ConsumerFactory, KafkaConsumer, KafkaMessage

__all__ = [
    "TP",
    "Commit",
    "ConsumerFactory",
    "Hold",
    "HoldReason",
    "Inbound",
    "KafkaConsumer",
    "KafkaMessage",
    "OffsetTracker",
    "PollSettings",
    "Poller",
    "cluster_topics",
    "consumer_config",
    "producer_config",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "Poller": "connector.source.poller",
        "PollSettings": "connector.source.poller",
        "TP": "connector.source.offsets",
        "Commit": "connector.source.offsets",
        "OffsetTracker": "connector.source.offsets",
        "Inbound": "connector.source.kafka",
        "consumer_config": "connector.source.kafka",
        "producer_config": "connector.source.kafka",
        "Hold": "connector.source.flow",
        "HoldReason": "connector.source.flow",
        "ConsumerFactory": "connector.source.protocols",
        "KafkaConsumer": "connector.source.protocols",
        "KafkaMessage": "connector.source.protocols",
        "cluster_topics": "connector.source.probe",
    },
)
