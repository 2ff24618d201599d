"""The HTTP seam under :class:`~connector.attentive.client.AttentiveClient`: one small protocol, three transports.

The client needs very little from HTTP: POST bytes to a path with some headers, GET ``/v1/me``, and the answer's
status, headers and body. :class:`AttentiveTransport` is exactly that, so the per-record path pays for nothing
else (no per-request URL parsing, header merging, auth or redirect layers)::

    transport = AiohttpTransport("https://api.attentivemobile.com", max_connections=128, timeout_s=10)
    raw = await transport.post("/v1/events/custom", b'{"type":"x"}', {"X-Record-Id": "t/0/1"})
    raw.status, raw.headers.get("x-ratelimit-remaining"), raw.body

* :class:`AiohttpTransport` — the production one: one ``aiohttp.ClientSession`` (no cookie jar: the API sets
  none; certifi's CAs, as httpx), the URL of each path built once, the pool sized to the engine's
  ``max_in_flight``.
* :class:`HttpxTransport` — any ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests, httpx's own
  transport for comparison) behind the same protocol: httpx stays the project's test seam and HTTP API.
* :class:`MockTransport` — a handler function in, no sockets; the seam's own tests use it.

Why aiohttp directly: measured against the sandbox (64 in flight, README "Performance"), httpx's
``AsyncClient`` over the aiohttp transport costs ~420 µs of CPU per request, calling the httpx transport
directly with a prebuilt request ~190 µs, and ``aiohttp`` with a prebuilt URL ~125 µs.

A request that gets no HTTP answer raises :class:`TransportFailure` (``timeout`` tells a timeout from a refused
or broken connection); the client turns it into a :class:`~connector.errors.NetworkError` naming the endpoint
and record. Headers carry the API key: no transport logs them or puts them in a repr.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
import yarl

__all__ = [
    "AiohttpTransport",
    "AttentiveTransport",
    "HttpxTransport",
    "MockTransport",
    "RawResponse",
    "TransportFailure",
]


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP answer: status, headers (a case-insensitive mapping) and the body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class TransportFailure(Exception):
    """No HTTP answer. ``timeout`` is True for a timeout, False for a refused/reset/broken connection.

    Raised by transports only and turned into a :class:`~connector.errors.NetworkError` by the client (it
    never leaves the client). ``detail`` describes the cause without request headers.
    """

    def __init__(self, detail: str, *, timeout: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.timeout = timeout


class AttentiveTransport(Protocol):
    """What :class:`~connector.attentive.client.AttentiveClient` needs from HTTP."""

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        """POST ``body`` to ``path`` (``/v1/...``) with exactly ``headers``; one attempt, no redirects."""
        ...

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        """GET ``path`` with exactly ``headers``; one attempt, no redirects."""
        ...

    async def aclose(self) -> None:
        """Close the connections; the transport is not used afterwards."""
        ...


class AiohttpTransport:
    """:class:`AttentiveTransport` over one ``aiohttp.ClientSession`` (made on first use, inside the loop).

    ``timeout_s`` bounds each request as a whole (connect, send, answer). ``aiohttp`` still adds ``Host``,
    ``Content-Length`` and ``Accept-Encoding``; everything else comes from the caller's headers.
    """

    def __init__(self, base_url: str, *, max_connections: int = 100, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}

    def __repr__(self) -> str:
        return f"AiohttpTransport({self._base!r})"

    def _url(self, path: str) -> yarl.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self._base + path)
        return url

    def _open(self) -> aiohttp.ClientSession:
        # The same trust store as httpx (certifi), so the image needs no system CA bundle.
        ssl: ssl_module.SSLContext | bool = (
            httpx.create_ssl_context() if self._base.startswith("https:") else False
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl),
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            raise_for_status=False,
        )
        return self._session

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> RawResponse:
        session = self._session or self._open()
        try:
            response = await session._request(  # noqa: SLF001 - skips the context-manager wrapper (hot path)
                method, self._url(path), data=body, headers=headers, allow_redirects=False
            )
            try:
                content = await response.read()
            finally:
                response.release()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise TransportFailure(f"timed out after {self._timeout_s:g}s", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise TransportFailure(str(exc) or type(exc).__name__) from None
        return RawResponse(response.status, response.headers, content)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("GET", path, None, headers)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """:class:`AttentiveTransport` over any ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests).

    ``timeout_s`` is passed to the transport as httpx's per-request timeouts and also bounds the whole
    attempt (some transports ignore httpx's timeout extensions).
    """

    def __init__(
        self, base_url: str, transport: httpx.AsyncBaseTransport, *, timeout_s: float = 10.0
    ) -> None:
        self._base = base_url.rstrip("/")
        self._transport = transport
        self._timeout_s = timeout_s
        self._extensions = {"timeout": httpx.Timeout(timeout_s).as_dict()}

    def __repr__(self) -> str:
        return f"HttpxTransport({self._base!r}, {type(self._transport).__name__})"

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> RawResponse:
        request = httpx.Request(
            method, self._base + path, headers=headers, content=body, extensions=self._extensions
        )
        try:
            async with asyncio.timeout(self._timeout_s + 1.0):
                response = await self._transport.handle_async_request(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError) as exc:
            # httpx-aiohttp reports a refused connection as ConnectTimeout: look at the cause to say which.
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(
                cause, aiohttp.ServerTimeoutError
            ):
                raise TransportFailure(str(cause)) from None
            raise TransportFailure(f"timed out after {self._timeout_s:g}s", timeout=True) from None
        except httpx.HTTPError as exc:
            raise TransportFailure(str(exc.__cause__ or exc) or type(exc).__name__) from None
        return RawResponse(response.status_code, response.headers, content)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("GET", path, None, headers)

    async def aclose(self) -> None:
        await self._transport.aclose()


@dataclass(frozen=True, slots=True)
class MockRequest:
    """What a :class:`MockTransport` handler sees."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None


Handler = Callable[[MockRequest], RawResponse | Awaitable[RawResponse]]


class MockTransport:
    """:class:`AttentiveTransport` that hands every request to ``handler`` (sync or async) — no sockets.

    The handler returns a :class:`RawResponse` or raises :class:`TransportFailure` to play a network fault.
    ``requests`` keeps what was sent, in order; ``closed`` tells whether :meth:`aclose` ran.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[MockRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return "MockTransport()"

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> RawResponse:
        request = MockRequest(method, path, httpx.Headers(dict(headers)), body)
        self.requests.append(request)
        result = self._handler(request)
        if not isinstance(result, RawResponse):
            result = await result
        return RawResponse(result.status, httpx.Headers(dict(result.headers)), result.body)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> RawResponse:
        return await self._send("GET", path, None, headers)

    async def aclose(self) -> None:
        self.closed = True
