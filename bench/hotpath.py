"""The connector's own CPU per request, in one process: the real runtime, no broker, no sockets.

``python -m bench.hotpath [--records N] [--http] [--profile FILE]`` builds the benchmark's pool, takes the
end-to-end phase's natural mix of it, and drains it through the connector's own :class:`DeliveryRuntime`
(poll thread, engine, router and decoders, lanes, deliverer, real :class:`AttentiveClient` and rate limiter,
limits lifted as in the end-to-end phase) over :func:`bench.engine_probe.memory_runtime`'s in-memory
consumer. The transport answers every request with a 200 at the next event-loop turn, so what is measured is
everything the connector does per request except HTTP, with little noise (repeat runs agree within a few per cent, where the
end-to-end phase drifts with the machine). ``--http`` sends over the real aiohttp transport to a fast
sandbox instead (still no broker), to see what HTTP adds inside the connector. ``--profile FILE`` writes a
cProfile of the drain (call counts per record are what it is good for; its timings are inflated).

It is a tool for working on the hot path, not a figure of the benchmark: ``make bench`` reports the end-to-end
phase, measured on the real broker and sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench import backlog as bl
from bench.engine_probe import memory_runtime, probe_config
from bench.stack import FAST_SANDBOX_FLAGS, TOPICS, UNLIMITED_RATE
from connector.attentive.client import AttentiveClient
from connector.attentive.endpoints import Endpoint
from connector.attentive.transport import AttentiveTransport, RawResponse
from connector.config import ConnectorConfig
from connector.observability.metrics import Metrics


class AnswerAtOnce:
    """An :class:`AttentiveTransport` answering 200 ``{}`` one event-loop turn later (a request still yields)."""

    def __init__(self) -> None:
        self.requests = 0
        self._headers = {"content-type": "application/json"}

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        self.requests += 1
        await asyncio.sleep(0)
        return RawResponse(200, self._headers, b"{}")

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        return RawResponse(200, self._headers, b"{}")

    async def aclose(self) -> None:
        return None


class Counting:
    """Wraps a real transport, counting the POSTs."""

    def __init__(self, inner: AttentiveTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        self.requests += 1
        return await self.inner.post(path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        return await self.inner.get(path, headers)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _drain(
    config: ConnectorConfig,
    records: list[bl.PoolRecord],
    transport: AnswerAtOnce | Counting,
    profile: cProfile.Profile | None,
) -> dict[str, Any]:
    from connector.pipeline.runtime import settle_heap

    metrics = Metrics(CollectorRegistry())
    client = AttentiveClient(
        config.attentive,
        metrics=metrics,
        transport=transport,
        max_connections=config.delivery.max_in_flight,
    )
    runtime = memory_runtime(config, records, client, metrics)
    settle_heap()
    await runtime.start()
    in_flight: list[int] = []
    t0, cpu0 = time.monotonic(), time.process_time()
    if profile is not None:
        profile.enable()
    while True:
        await asyncio.sleep(0.05)
        in_flight.append(runtime.deliverer.in_flight)
        stats = runtime.engine.stats()
        if stats["consumed"] >= len(records) and stats["pending"] == 0:
            break
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    await runtime.shutdown(5)
    n = transport.requests
    return {
        "records": len(records),
        "requests": n,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_request": round(cpu / n * 1000, 4) if n else None,
        "requests_per_s": round(n / wall, 1) if wall else None,
        "in_flight_mean": round(sum(in_flight) / len(in_flight), 1) if in_flight else 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=60_000, help="records to drain (default: %(default)s)")
    ap.add_argument("--http", action="store_true", help="real aiohttp transport to a fast sandbox")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the drain here")
    args = ap.parse_args()
    api_key = "hotpath-" + secrets.token_hex(8)
    sandbox = None
    if args.http:
        from connector.devkafka.sandbox_process import SandboxProcess

        sandbox = SandboxProcess(*FAST_SANDBOX_FLAGS, api_key=api_key)
    try:
        config = probe_config(
            "hotpath",
            sandbox.url if sandbox else "http://127.0.0.1:9",
            api_key,
            rate_limits={str(e): UNLIMITED_RATE for e in Endpoint},  # lifted, as in the end-to-end phase
        )
        pool = bl.build_pool(config, TOPICS, 2000)
        records = bl.natural_mix(pool, args.records)
        transport: AnswerAtOnce | Counting
        if sandbox is not None:
            from connector.attentive.client import api_base_url, default_transport

            transport = Counting(
                default_transport(
                    api_base_url(config.attentive.base_url),
                    config.delivery.max_in_flight,
                    config.attentive.timeout_s,
                )
            )
        else:
            transport = AnswerAtOnce()
        profile = cProfile.Profile() if args.profile else None
        out = asyncio.run(_drain(config, records, transport, profile))
        if profile is not None:
            profile.dump_stats(str(args.profile))
        print(json.dumps(out))
    finally:
        if sandbox is not None:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
