"""``attentive-connector sandbox``: run the local Attentive stand-in until interrupted.

Prints exactly one line, ``sandbox listening on http://HOST:PORT``, once the port is open (with ``--port 0``
the real port), so scripts and test fixtures can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from connector.attentive.endpoints import Endpoint
from connector.sandbox.app import SandboxSettings, make_app
from connector.sandbox.faults import Faults, FaultsError, parse_pairs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one; default 8080)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="the key clients must send as 'Authorization: Bearer KEY' (default: $ATTENTIVE_API_KEY)",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip request-body validation (raw speed)")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept unknown top-level body fields like Attentive does (default: 400, to catch typos)",
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="no rate limits and no 429s")
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="ENDPOINT=N",
        help=f"requests/second for an endpoint (repeatable); endpoints: {', '.join(e.value for e in Endpoint)}",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per answer")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency, 0..N ms")
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="STATUS=P",
        help="answer STATUS with probability P (repeatable), e.g. 503=0.1",
    )
    parser.add_argument("--journal-max", type=int, default=1_000_000, help="requests kept in the journal")
    parser.add_argument("--seed", type=int, default=None, help="seed for injected faults and jitter")


def settings_from_args(args: argparse.Namespace) -> SandboxSettings:
    """Validate the flags into :class:`SandboxSettings`; raises ``SystemExit``-free ``ValueError`` s."""
    key = args.api_key or os.environ.get("ATTENTIVE_API_KEY")
    if not key:
        raise ValueError("--api-key is required (or set ATTENTIVE_API_KEY)")
    limits: dict[Endpoint, int] = {}
    for name, value in parse_pairs(args.rate_limit, "--rate-limit", int).items():
        try:
            endpoint = Endpoint(name)
        except ValueError:
            raise ValueError(
                f"--rate-limit: unknown endpoint {name!r} (one of {', '.join(e.value for e in Endpoint)})"
            ) from None
        if value < 1:
            raise ValueError(f"--rate-limit {name}: must be at least 1")
        limits[endpoint] = value
    faults = {
        "error_rates": parse_pairs(args.error_rate, "--error-rate", float),
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
    }
    Faults.parse(faults, now=0.0)  # fail at start, not on the first request
    if args.journal_max < 0:
        raise ValueError("--journal-max must not be negative")
    return SandboxSettings(
        api_key=key,
        validate=not args.no_validate,
        strict_top_level=not args.lenient,
        rate_limit=not args.no_rate_limit,
        rate_limits=limits,
        faults=faults,
        journal_max=args.journal_max,
        seed=args.seed,
    )


async def _freeze_survivors(every_s: float = 2.0) -> None:
    while True:
        gc.freeze()
        await asyncio.sleep(every_s)


async def serve(settings: SandboxSettings, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM."""
    runner = web.AppRunner(make_app(settings), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        print(f"sandbox listening on http://{shown}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The journal grows by a few objects per request: keep what survived out of the collector's full
        # scans, or they pause this loop for a noticeable part of a second and a benchmark measures the pause.
        freezer = asyncio.create_task(_freeze_survivors())
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        freezer.cancel()
    finally:
        await runner.cleanup()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (about a third less CPU per request), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except (ValueError, FaultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        _run(serve(settings, args.host, args.port))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # python -m connector.sandbox.cli (without the other commands' imports)
    p = argparse.ArgumentParser(prog="attentive-connector sandbox")
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
