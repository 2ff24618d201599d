"""Measure the HTTP ways to the sandbox the client could take: how the hot path's transport was chosen.

``python -m bench.transports [--requests N] [--concurrency C] [--rounds R]``

Starts a sandbox subprocess (no validation, no rate limits, so the server is not what is measured) and posts
the same purchase body ``N`` times with ``C`` requests in flight through:

* ``httpx AsyncClient + httpx-aiohttp`` — the client's hot path before issue 11 (httpx's per-request layers);
* ``AttentiveClient / HttpxTransport(httpx-aiohttp)`` — the client over an ``httpx.AsyncBaseTransport``
  called directly with a prebuilt request;
* ``AttentiveClient / AiohttpTransport`` — the client over the project's aiohttp seam (the default);
* ``raw aiohttp`` — ``ClientSession.post`` alone, the floor.

Reports requests/second and CPU per request of this process (the sandbox is another), best of ``R`` rounds,
alternating so machine noise hits all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx

from connector.attentive.client import AttentiveClient
from connector.attentive.endpoints import Endpoint
from connector.attentive.jsonio import dumps
from connector.attentive.models import build_body
from connector.attentive.transport import AiohttpTransport, HttpxTransport
from connector.config import AttentiveSettings
from connector.types import Call

KEY = "transport-bench-key"
BODY = build_body(
    Endpoint.PURCHASE,
    {
        "items": [
            {"productId": "p1", "productVariantId": "v1", "price": [{"value": "19.99"}], "quantity": 1}
        ],
        "user": {"phone": "+14155550123", "email": "a@b.co"},
    },
)
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "Accept": "application/json"}


@dataclass
class Result:
    name: str
    rps: float
    cpu_us_per_req: float


One = Callable[[int], Awaitable[None]]


async def _measure(name: str, one: One, requests: int, concurrency: int) -> Result:
    await asyncio.gather(*(one(-1) for _ in range(concurrency)))  # warm the pool
    todo = list(range(requests))

    async def worker() -> None:
        while todo:
            await one(todo.pop())

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return Result(name, requests / wall, cpu / requests * 1e6)


def _settings(url: str) -> AttentiveSettings:
    return AttentiveSettings(base_url=url, api_key=KEY, rate_limits={Endpoint.PURCHASE: 1e9}, timeout_s=30)  # type: ignore[arg-type]


async def httpx_client(url: str, n: int, c: int) -> Result:
    from httpx_aiohttp import AiohttpTransport as HttpxAiohttp

    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    content = dumps(BODY)
    async with httpx.AsyncClient(
        base_url=url, headers=HEADERS, transport=HttpxAiohttp(limits=limits)
    ) as http:

        async def one(i: int) -> None:
            r = await http.post(Endpoint.PURCHASE.path, content=content, headers={"X-Record-Id": f"b/0/{i}"})
            r.text  # noqa: B018 - the old client decoded every body

        return await _measure("httpx AsyncClient + httpx-aiohttp", one, n, c)


async def client_over(name: str, url: str, n: int, c: int, transport: object) -> Result:
    async with AttentiveClient(_settings(url), transport=transport, max_connections=c) as client:  # type: ignore[arg-type]

        async def one(i: int) -> None:
            await client.send(Call(Endpoint.PURCHASE, BODY, f"b/0/{i}", "bench"))

        return await _measure(name, one, n, c)


async def raw_aiohttp(url: str, n: int, c: int) -> Result:
    content = dumps(BODY)
    full = url.rstrip("/") + Endpoint.PURCHASE.path
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def one(i: int) -> None:
            async with session.post(full, data=content, headers={**HEADERS, "X-Record-Id": f"b/0/{i}"}) as r:
                await r.read()

        return await _measure("raw aiohttp", one, n, c)


async def run_once(kind: str, url: str, n: int, c: int) -> Result:
    from httpx_aiohttp import AiohttpTransport as HttpxAiohttp

    if kind == "httpx":
        return await httpx_client(url, n, c)
    if kind == "httpx-transport":
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        t = HttpxTransport(url, HttpxAiohttp(limits=limits), timeout_s=30)
        return await client_over("AttentiveClient / HttpxTransport(httpx-aiohttp)", url, n, c, t)
    if kind == "seam":
        t2 = AiohttpTransport(url, max_connections=c, timeout_s=30)
        return await client_over("AttentiveClient / AiohttpTransport", url, n, c, t2)
    return await raw_aiohttp(url, n, c)


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
        best: dict[str, Result] = {}
        for _ in range(args.rounds):
            for kind in ("httpx", "httpx-transport", "seam", "raw"):
                r = asyncio.run(run_once(kind, url, args.requests, args.concurrency))
                if r.name not in best or r.cpu_us_per_req < best[r.name].cpu_us_per_req:
                    best[r.name] = r
        print(f"{args.requests} POSTs, {args.concurrency} in flight, best of {args.rounds} (by CPU):")
        for r in best.values():
            print(f"  {r.name:48} {r.rps:7.0f} req/s  {r.cpu_us_per_req:5.0f} us CPU/req")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
