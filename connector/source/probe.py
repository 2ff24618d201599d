"""Is the Kafka cluster there? One bounded metadata request, for commands that should fail fast.

``produce-samples`` and ``dlq replay`` ask before they start: against a dead broker librdkafka would otherwise
retry for a minute (``message.timeout.ms``) and print a line per reconnect. :func:`cluster_topics` answers
within ``timeout_s`` with the topic names, or raises :class:`KafkaUnreachableError` whose message is one line
naming the bootstrap servers and where they are configured.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.errors import KafkaUnreachableError

# librdkafka's own lines while probing a dead broker are the expected failure, said once by the error.
_quiet = logging.getLogger("connector.kafka.probe")
_quiet.propagate = False
_quiet.addHandler(logging.NullHandler())

PROBE_TIMEOUT_S = 10.0


def cluster_topics(client_conf: dict[str, Any], *, timeout_s: float = PROBE_TIMEOUT_S) -> set[str]:
    """The cluster's topic names (one metadata request, at most ``timeout_s``)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf = {k: v for k, v in client_conf.items() if k not in ("logger", "error_cb")}
    conf["logger"] = _quiet
    conf["error_cb"] = lambda _err: None
    bootstrap = conf.get("bootstrap.servers", "?")
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        metadata = None
    if metadata is None or not metadata.brokers:
        raise KafkaUnreachableError(
            f"cannot reach Kafka at {bootstrap} within {timeout_s:.0f}s "
            "(check KAFKA_BOOTSTRAP_SERVERS / kafka.bootstrap_servers and that the broker is up)"
        )
    return {name for name, topic in metadata.topics.items() if topic.error is None}
