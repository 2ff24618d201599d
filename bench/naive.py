"""The naive baseline: what most teams write first.

One loop: poll one record, decode and route it (the project's own router, so only the delivery strategy
differs from the connector), POST each call with a synchronous ``httpx.Client``, then commit that record's
offset synchronously before polling the next. No concurrency, no batching of commits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

import httpx
from confluent_kafka import Consumer, TopicPartition

from bench.ceilings import Rate
from connector.attentive.jsonio import dumps
from connector.config import ConnectorConfig
from connector.source.kafka import to_source_record


def naive_loop(
    config: ConnectorConfig,
    start: Mapping[tuple[str, int], int],
    *,
    base_url: str,
    api_key: str,
    max_records: int,
    max_seconds: float,
) -> tuple[Rate, dict[int, int]]:
    """Run the loop until ``max_records`` or ``max_seconds``; records per second over the loop's run."""
    from connector.rules.router import Router

    router = Router.from_config(config)
    consumer = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "group.id": "bench-naive",
            "enable.auto.commit": False,
            **dict(config.kafka.client.items()),
        }
    )
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
    statuses: dict[int, int] = {}
    done = 0
    first: float | None = None
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            while done < max_records and (first is None or time.monotonic() - first < max_seconds):
                msg = consumer.poll(1.0)
                if msg is None or msg.error():
                    if first is None and msg is None:
                        continue
                    continue
                if first is None:
                    first = time.monotonic()
                record = to_source_record(cast(Any, msg))  # the connector's own conversion
                result = router.route(record)
                for call in result.calls:
                    r = http.post(
                        call.endpoint.path, content=dumps(call.body), headers={"X-Record-Id": call.record_id}
                    )
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                consumer.commit(message=msg, asynchronous=False)
                done += 1
            last = time.monotonic()
    finally:
        consumer.close()
    assert first is not None
    return Rate(done, last - first), statuses
