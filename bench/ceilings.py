"""The two ceilings the connector is compared with, measured in the same run.

* consume + decode: a confluent-kafka consumer and the project's Avro decoders, nothing else — what the Kafka
  side of one Python process can do.
* bare HTTP: the HTTP client the connector uses, posting prebuilt bodies to the sandbox (no validation, no
  rate limit, no latency) with 64 requests in flight — what the HTTP side can do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from confluent_kafka import Consumer, TopicPartition

from bench.backlog import Request
from connector.config import ConnectorConfig, Encoding


@dataclass
class Rate:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def consume_decode(
    config: ConnectorConfig, start: Mapping[tuple[str, int], int], count: int, *, timeout_s: float = 120
) -> Rate:
    """Consume ``count`` records from the ``start`` offsets and decode every value; time first to last."""
    from connector.avro.decoder import Decoder
    from connector.avro.registry import WriterSchemas, make_registry_client
    from connector.avro.schema import load_schema

    writer_schemas = (
        WriterSchemas(make_registry_client(config.kafka.schema_registry))
        if config.kafka.schema_registry is not None
        else None
    )
    decoders = {
        topic: Decoder(
            topic,
            load_schema(config.resolve(s.schema_file)),
            s.encoding,
            writer_schemas=writer_schemas if s.encoding is Encoding.CONFLUENT else None,
        )
        for topic, s in config.topics.items()
    }
    consumer = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "group.id": "bench-consume-decode",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **dict(config.kafka.client.items()),
        }
    )
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
    done = 0
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while done < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consume+decode: only {done} of {count} records within {timeout_s}s")
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            if not batch:
                continue
            if first is None:
                first = time.monotonic()
            for msg in batch:
                if msg.error():
                    continue
                decoders[msg.topic() or ""].decode(msg.value())
                done += 1
        last = time.monotonic()
    finally:
        consumer.close()
    assert first is not None
    # The first batch's arrival starts the clock; count it as work done inside the window.
    return Rate(done, last - first)


def make_transport(concurrency: int = 64) -> httpx.AsyncBaseTransport:
    """The transport the connector's client uses when none is injected (same pool size as in flight)."""
    from connector.attentive.client import default_transport

    return default_transport(concurrency)


async def _post_all(
    url: str,
    api_key: str,
    requests: Sequence[Request],
    *,
    duration_s: float,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[Rate, dict[int, int]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    statuses: dict[int, int] = {}
    done = 0
    next_i = 0
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30, transport=transport
    ) as client:
        # Warm the connection pool so connection set-up is not in the window.
        await asyncio.gather(
            *(client.post(requests[0].path, content=requests[0].body) for _ in range(concurrency))
        )
        start = time.monotonic()
        stop_at = start + duration_s

        async def worker() -> None:
            nonlocal done, next_i
            while time.monotonic() < stop_at:
                req = requests[next_i % len(requests)]
                next_i += 1
                r = await client.post(req.path, content=req.body, headers={"X-Record-Id": req.record_id})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    return Rate(done, elapsed), statuses


def bare_http(
    url: str,
    api_key: str,
    requests: Sequence[Request],
    *,
    duration_s: float,
    concurrency: int = 64,
    transport: str = "connector",
) -> tuple[Rate, dict[int, int]]:
    """Requests per second posting prebuilt bodies with ``concurrency`` in flight for ``duration_s``.

    ``transport``: ``connector`` (what the connector's client uses) or ``httpx`` (httpx's own transport, for
    the comparison in README).
    """

    async def main() -> tuple[Rate, dict[int, int]]:
        # Made inside the loop: aiohttp-based transports bind to the running event loop.
        if transport == "connector":
            chosen = make_transport(concurrency)
        elif transport == "httpx":
            from connector.attentive.client import httpx_transport

            chosen = httpx_transport(concurrency)
        else:
            raise ValueError(f"unknown transport {transport!r}")
        return await _post_all(
            url, api_key, requests, duration_s=duration_s, concurrency=concurrency, transport=chosen
        )

    return asyncio.run(main())


def bare_aiohttp(
    url: str, api_key: str, requests: Sequence[Request], *, duration_s: float, concurrency: int = 64
) -> Rate:
    """The same load with aiohttp itself (reference only: the connector keeps httpx's API)."""
    import aiohttp

    async def main() -> Rate:
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        done = 0
        next_i = 0
        async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

            async def one(req: Request) -> None:
                async with session.post(req.path, data=req.body, headers={"X-Record-Id": req.record_id}) as r:
                    await r.read()

            await asyncio.gather(*(one(requests[0]) for _ in range(concurrency)))
            start = time.monotonic()
            stop_at = start + duration_s

            async def worker() -> None:
                nonlocal done, next_i
                while time.monotonic() < stop_at:
                    req = requests[next_i % len(requests)]
                    next_i += 1
                    await one(req)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return Rate(done, time.monotonic() - start)

    return asyncio.run(main())
