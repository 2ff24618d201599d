"""The one place the project starts a Schema Registry for local use (the demo, ``dev up``, tests of both).

:func:`schema_registry` yields the URL of a registry that answers Confluent's REST API, stopping it at the end.
It is a real Apicurio Registry 3.0.9 (:mod:`connector.devkafka.apicurio`: fetched once into ``.cache/``,
Confluent-compatible API, compatibility enforced); callers only see the URL and the readiness guarantee.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx

from connector.devkafka.apicurio import start_apicurio

KIND = "Apicurio Registry 3.0.9"
"""What :func:`schema_registry` starts (printed by ``dev up`` and the demo)."""


@contextlib.contextmanager
def schema_registry(
    *, host: str = "127.0.0.1", port: int = 0, ready_timeout_s: float = 30.0
) -> Iterator[str]:
    """A Schema Registry on ``host:port`` (``0`` = a free port), ready to serve; yields its base URL.

    (Apicurio binds loopback only; ``host`` must be a loopback address.)
    """
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError("the local schema registry listens on loopback only")
    handle = start_apicurio(port=port or None)
    try:
        wait_until_ready(handle.url, timeout_s=ready_timeout_s)
        yield handle.url
    finally:
        handle.stop()


def wait_until_ready(url: str, *, timeout_s: float = 30.0) -> None:
    """Wait until ``GET /subjects`` answers 200 (the registry can register and look schemas up)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/subjects", timeout=2).status_code == 200:
                return
            last = "not ready"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"the schema registry at {url} was not ready within {timeout_s:.0f}s ({last})")
