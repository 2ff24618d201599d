"""The ceilings the connector is compared with, measured in the same run.

* consume + decode: a confluent-kafka consumer and the project's Avro decoders, nothing else — what the Kafka
  side of one Python process can do.
* bare HTTP: the HTTP transport the connector's hot path uses, posting prebuilt bodies to the sandbox (no
  validation, no rate limit, no latency) with 64 requests in flight — what the HTTP side can do; and raw
  aiohttp under the same load (the floor under any Python client). Each client runs in a process of its own
  (:func:`http_client`), so its CPU per request is read from its own ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- HTTP clients, each in a process of its own ---------------------------------------------------------

CLIENTS = ("seam", "aiohttp", "httpx", "httpx-aiohttp")
"""``seam``: the transport the connector's hot path uses (``AiohttpTransport.post`` with the client's prebuilt
per-endpoint headers plus ``X-Record-Id``); ``aiohttp``: raw ``aiohttp.ClientSession.post`` (the floor);
``httpx``: ``httpx.AsyncClient`` with its own transport; ``httpx-aiohttp``: ``httpx.AsyncClient`` over
``httpx-aiohttp`` (the hot path before issue 11)."""


@dataclass
class ClientRun:
    """One client's run: requests answered, the window, and that process's own CPU seconds in it."""

    client: str
    count: int
    seconds: float
    cpu_s: float
    statuses: dict[int, int]

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s / self.count * 1000 if self.count else 0.0


def http_client(
    client: str,
    url: str,
    api_key: str,
    requests: Sequence[Request],
    *,
    duration_s: float,
    concurrency: int = 64,
    timeout_s: float = 120.0,
) -> ClientRun:
    """Run ``client`` (one of :data:`CLIENTS`) in a subprocess posting ``requests`` round-robin for
    ``duration_s`` with ``concurrency`` in flight; its CPU comes from its own ``/proc/<pid>/stat``."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r} (expected one of {', '.join(CLIENTS)})")
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        spec = Path(tmp) / "requests.json"
        spec.write_text(
            json.dumps([[r.path, r.body.decode("ascii"), r.record_id] for r in requests]), encoding="utf-8"
        )
        cmd = [
            sys.executable,
            "-m",
            "bench.ceilings",
            client,
            url,
            str(spec),
            str(duration_s),
            str(concurrency),
        ]
        done = subprocess.run(
            cmd,
            env={**os.environ, "BENCH_API_KEY": api_key},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{client} client failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return ClientRun(
        client, out["count"], out["seconds"], out["cpu_s"], {int(k): v for k, v in out["statuses"].items()}
    )


async def _client_main(
    client: str, url: str, api_key: str, requests: list[Request], duration_s: float, concurrency: int
) -> dict[str, Any]:
    """The subprocess's side of :func:`http_client`: warm the pool, then post for ``duration_s``."""
    from bench.procstats import cpu_seconds

    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "attentive-connector-bench",
    }
    statuses: dict[int, int] = {}
    post: Callable[[Request], Awaitable[int]]
    close: Callable[[], Awaitable[None]]
    if client == "seam":
        from connector.attentive.transport import AiohttpTransport

        seam = AiohttpTransport(url, max_connections=concurrency, timeout_s=30)

        async def post(req: Request) -> int:
            h = headers.copy()
            h["X-Record-Id"] = req.record_id
            return (await seam.post(req.path, req.body, h)).status

        close = seam.aclose
    elif client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            url, headers=headers, connector=aiohttp.TCPConnector(limit=concurrency)
        )

        async def post(req: Request) -> int:
            async with session.post(req.path, data=req.body, headers={"X-Record-Id": req.record_id}) as r:
                await r.read()
                return r.status

        close = session.close
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport: httpx.AsyncBaseTransport
        if client == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport as HttpxAiohttp

            transport = HttpxAiohttp(limits=limits)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits)
        http = httpx.AsyncClient(base_url=url, headers=headers, timeout=30, transport=transport)

        async def post(req: Request) -> int:
            r = await http.post(req.path, content=req.body, headers={"X-Record-Id": req.record_id})
            return r.status_code

        close = http.aclose
    try:
        await asyncio.gather(*(post(requests[0]) for _ in range(concurrency)))  # warm the pool
        done = 0
        next_i = 0
        pid = os.getpid()
        cpu0, start = cpu_seconds(pid), time.monotonic()
        stop_at = start + duration_s

        async def worker() -> None:
            nonlocal done, next_i
            while time.monotonic() < stop_at:
                req = requests[next_i % len(requests)]
                next_i += 1
                status = await post(req)
                statuses[status] = statuses.get(status, 0) + 1
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - start, cpu_seconds(pid) - cpu0
    finally:
        await close()
    return {"count": done, "seconds": elapsed, "cpu_s": cpu, "statuses": statuses}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.ceilings CLIENT URL REQUESTS_JSON DURATION_S CONCURRENCY`` (the key in
    ``BENCH_API_KEY``): one :func:`http_client` run; prints its JSON line."""
    client, url, spec, duration, concurrency = (argv if argv is not None else sys.argv[1:])[:5]
    rows = json.loads(Path(spec).read_text(encoding="utf-8"))
    requests = [Request(path, body.encode("ascii"), rid) for path, body, rid in rows]
    out = asyncio.run(
        _client_main(client, url, os.environ["BENCH_API_KEY"], requests, float(duration), int(concurrency))
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
