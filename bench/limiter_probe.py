"""The Attentive client alone against Attentive-shaped limits: can its rate limiter reach each limit?

``python -m bench.limiter_probe [--seconds S] [--latency-ms MS]`` starts a sandbox with Attentive's limits,
then drives :class:`connector.attentive.client.AttentiveClient` (shipped settings) with enough concurrent
callers per endpoint to keep every endpoint saturated for ``S`` seconds, all endpoints at once, and prints
per endpoint the 2xx rate over the busy window and the share of 429s. No Kafka, no engine: when this misses a
limit, the client's limiter is the cause; when this meets it and the end-to-end run does not, look at the
engine (lanes, in-flight slots, buffer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from typing import Any

from pydantic import SecretStr

from bench import shaped
from connector.attentive.endpoints import Endpoint
from connector.config import AttentiveSettings
from connector.devkafka.sandbox_process import SandboxProcess
from connector.types import Call

# Bodies the sandbox accepts without validation; the probe measures pacing, not request building.
_BODY: dict[str, Any] = {
    "user": {"email": "probe@example.com"},
    "type": "Probe",
    "properties": {"a": "1"},
    "locale": {"language": "en", "country": "US"},
    "subscriptionType": "MARKETING",
    "items": [{"productId": "p", "productVariantId": "v", "price": [{"value": 1, "currency": "USD"}]}],
    "subscriptions": [{"type": "MARKETING", "channel": "TEXT"}],
}


async def _drive(url: str, api_key: str, seconds: float, limits: dict[Endpoint, float]) -> None:
    from connector.attentive.client import AttentiveClient

    settings = AttentiveSettings(base_url=url, api_key=SecretStr(api_key))
    async with AttentiveClient(settings) as client:
        stop_at = time.monotonic() + seconds

        async def caller(endpoint: Endpoint, n: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                try:
                    await client.send(Call(endpoint, _BODY, f"probe/{n}/{i}", "probe"))
                except Exception:  # 429s and the like are counted from the sandbox's journal
                    await asyncio.sleep(0)

        # Enough callers to keep each endpoint busy at its limit with 150 ms answers, plus margin.
        tasks = [caller(e, n) for e, limit in limits.items() for n in range(max(4, int(limit * 0.3) + 4))]
        await asyncio.gather(*tasks)


def probe(
    seconds: float = 5.0,
    latency_ms: float = 100.0,
    jitter_ms: float = 50.0,
    endpoints: list[Endpoint] | None = None,
) -> dict[str, Any]:
    """Per endpoint {limit, achieved_per_s, share_429, requests, busy_s} for the client alone.

    ``endpoints``: drive only these (default: all at once, as in the Attentive-shaped phase). One at a time
    separates the limiter from the CPU: all seven at their limits is ~765 requests/s, near what one
    process's HTTP client manages on a small machine.
    """
    api_key = "probe-" + secrets.token_hex(8)
    flags = ["--no-validate"]
    if latency_ms:
        flags += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
    sb = SandboxProcess(*flags, api_key=api_key)
    try:
        limits = {e: AttentiveSettings().rate_limit(e) for e in (endpoints or list(Endpoint))}
        asyncio.run(_drive(sb.url, api_key, seconds, limits))
        return shaped.saturation(sb.journal(), limits)
    finally:
        sb.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--jitter-ms", type=float, default=50.0)
    ap.add_argument(
        "--endpoint",
        action="append",
        choices=[str(e) for e in Endpoint],
        help="only this endpoint (repeatable)",
    )
    args = ap.parse_args()
    chosen = [Endpoint(e) for e in args.endpoint] if args.endpoint else None
    print(json.dumps(probe(args.seconds, args.latency_ms, args.jitter_ms, chosen), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
