"""Measure the client's HTTP transports against the sandbox: httpx's own vs httpx-aiohttp.

``python -m connector.attentive.transport_bench [--requests N] [--concurrency C] [--rounds R]``

Starts a sandbox subprocess (no validation, no rate limits, so the server is not what is measured) and posts
the same purchase body through :class:`AttentiveClient` with each transport, ``C`` requests in flight. Reports
requests/second, client CPU per request and latency percentiles, best of ``R`` rounds (alternating transports
so machine noise hits both). This is how the default transport was chosen (see ``client.default_transport``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from connector.attentive.client import AttentiveClient, default_transport, httpx_transport
from connector.attentive.endpoints import Endpoint
from connector.attentive.models import build_body
from connector.config import AttentiveSettings
from connector.types import Call

KEY = "transport-bench-key"


@dataclass
class Result:
    name: str
    rps: float
    cpu_us_per_req: float
    p50_ms: float
    p99_ms: float


async def run_once(
    name: str, make: Callable[[int], httpx.AsyncBaseTransport], url: str, requests: int, concurrency: int
) -> Result:
    settings = AttentiveSettings(
        base_url=url,
        api_key=KEY,
        rate_limits={Endpoint.PURCHASE: 1e9},
        timeout_s=30,
    )
    body = build_body(
        Endpoint.PURCHASE,
        {
            "items": [
                {"productId": "p1", "productVariantId": "v1", "price": [{"value": "19.99"}], "quantity": 1}
            ],
            "user": {"phone": "+14155550123", "email": "a@b.co"},
        },
    )
    latencies: list[float] = []
    async with AttentiveClient(settings, transport=make(concurrency), max_connections=concurrency) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t = time.perf_counter()
                await client.send(Call(Endpoint.PURCHASE, body, f"bench/0/{i}", "bench"))
                latencies.append(time.perf_counter() - t)

        # warm the pool
        await asyncio.gather(
            *(client.send(Call(Endpoint.PURCHASE, body, "warm", "b")) for _ in range(concurrency))
        )
        latencies.clear()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    return Result(
        name,
        requests / wall,
        cpu / requests * 1e6,
        statistics.median(latencies) * 1000,
        latencies[int(len(latencies) * 0.99) - 1] * 1000,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    cmd = [sys.executable, "-m", "connector.sandbox.cli", "--port", "0", "--api-key", KEY, "--no-validate",
           "--no-rate-limit", "--journal-max", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("sandbox listening on ", 1)[1].strip()
        transports: dict[str, Callable[[int], httpx.AsyncBaseTransport]] = {
            "httpx (httpcore)": httpx_transport,
            "httpx-aiohttp": default_transport,
        }
        best: dict[str, Result] = {}
        for _ in range(args.rounds):
            for name, make in transports.items():
                r = asyncio.run(run_once(name, make, url, args.requests, args.concurrency))
                if name not in best or r.rps > best[name].rps:
                    best[name] = r
        print(f"{args.requests} POSTs, {args.concurrency} in flight, best of {args.rounds}:")
        for r in best.values():
            print(
                f"  {r.name:18} {r.rps:8.0f} req/s  {r.cpu_us_per_req:6.0f} us CPU/req  "
                f"p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
