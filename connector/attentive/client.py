"""Async Attentive API client: one attempt per :meth:`AttentiveClient.send`, classified into the error tree.

The delivery engine owns retries, circuits and pausing; this client does exactly one HTTP attempt after
waiting for the endpoint's rate limiter, and turns the answer into either an :class:`ApiResponse` or one of
:class:`~connector.errors.ApiTransientError` (429 → :class:`RateLimitedError`, 5xx, timeouts and connection
failures → :class:`NetworkError`), :class:`ApiPermanentError` (400/404/413/422 and other 4xx) or
:class:`ApiAuthError` (401/403). Subscribe's ``202 PREVIOUSLY_CREATED`` and a ``409`` on subscribe are
successes (the subscription exists).

Requests carry ``Authorization: Bearer <key>`` (added per request by an :class:`httpx.Auth`, so the key is not
in the client's default headers), ``Content-Type: application/json``, ``X-Record-Id`` and a ``User-Agent``.
Bodies are serialised with :func:`connector.attentive.jsonio.dumps`, which keeps decimal prices exact.

The key is a ``SecretStr`` from the settings and appears in no repr, message, log line or metric.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import httpx
from pydantic import SecretStr

from connector import __version__
from connector.attentive.endpoints import ME_PATH, Endpoint
from connector.attentive.jsonio import dumps, loads
from connector.attentive.models import MeInfo
from connector.attentive.ratelimit import RateLimiter, Sleep
from connector.config import AttentiveSettings
from connector.errors import (
    ApiAuthError,
    ApiError,
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
    RoutingError,
)
from connector.observability.metrics import Metrics, status_class
from connector.types import Call

log = logging.getLogger(__name__)

USER_AGENT = f"attentive-connector/{__version__}"
ME = "me"  # metrics label for GET /v1/me
ALREADY_DONE = frozenset({"PREVIOUSLY_CREATED", "PREVIOUSLY_UNSUBSCRIBED"})


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful answer. ``body`` is the parsed JSON (decimals exact) or ``None`` when there was none."""

    endpoint: str
    status: int
    body: Any
    record_id: str
    duration_s: float

    @property
    def already_done(self) -> bool:
        """True when Attentive reports nothing changed: subscription existed / user already unsubscribed."""
        if self.status == 409:
            return True
        responses = self.body.get("subscriptionResponses") if isinstance(self.body, dict) else None
        if not isinstance(responses, list) or not responses:
            return False
        statuses = {
            r.get("subscriptionCreationStatus") or r.get("subscriptionUnsubscribeStatus")
            for r in responses
            if isinstance(r, dict)
        }
        return statuses <= ALREADY_DONE


class _BearerAuth(httpx.Auth):
    """Adds the Authorization header to each request; its repr never shows the key."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(key=**********)"


def default_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """The transport used when none is injected: aiohttp under httpx's API.

    httpx's own async transport (httpcore) spends much more CPU per request under concurrency (httpx issue
    #3215); measured against the sandbox with 64 concurrent requests it is clearly slower (see README /
    ``bench/transport.py``). The pool allows ``max_connections`` connections (≥ the engine's max_in_flight).
    """
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    return transport


def httpx_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """httpx's own transport (httpcore), with the same pool size; kept for comparison and as a fallback."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncHTTPTransport(limits=limits)


def api_base_url(base_url: str) -> str:
    """Host part of the API URL; a trailing ``/v1`` (as in Attentive's ``servers`` entry) is tolerated."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def parse_retry_after(
    value: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """``Retry-After`` as seconds: delta-seconds (``"2"``, also ``"1.5"``) or an HTTP date. ``None`` if absent
    or unparseable; never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now()).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def classify(
    endpoint: str,
    status: int,
    headers: Mapping[str, str],
    body: str,
    *,
    record_id: str = "",
) -> ApiError | None:
    """The error an HTTP answer means for ``endpoint``, or ``None`` when it is a success.

    Messages carry the endpoint, status and record id, never request headers; the response body goes in
    ``.body`` (truncated) for the dead-letter record.
    """
    if 200 <= status < 300 or (status == 409 and endpoint == Endpoint.SUBSCRIBE):
        return None
    where = f"{endpoint} (record {record_id})" if record_id else endpoint
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return RateLimitedError(
            f"Attentive rate-limited {where}: HTTP 429",
            endpoint=endpoint,
            status=status,
            body=body,
            retry_after=retry_after,
        )
    if status in (401, 403):
        what = "rejected the API key" if status == 401 else "refused access (the key lacks a permission)"
        return ApiAuthError(
            f"Attentive {what} on {where}: HTTP {status}", endpoint=endpoint, status=status, body=body
        )
    if status >= 500 or status == 408:
        return ApiTransientError(
            f"Attentive failed on {where}: HTTP {status}",
            endpoint=endpoint,
            status=status,
            body=body,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    if 400 <= status < 500:
        return ApiPermanentError(
            f"Attentive rejected the request on {where}: HTTP {status}",
            endpoint=endpoint,
            status=status,
            body=body,
        )
    # 1xx/3xx: not an answer about the record (a wrong base_url redirects); keep the record and retry.
    return ApiTransientError(
        f"unexpected HTTP {status} from Attentive on {where} (check attentive.base_url)",
        endpoint=endpoint,
        status=status,
        body=body,
        reason="unexpected_status",
    )


class AttentiveClient:
    """Async client for the Attentive endpoints the connector uses (see module docstring)."""

    def __init__(
        self,
        settings: AttentiveSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_connections: int = 100,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = api_base_url(settings.base_url)
        self._metrics = metrics if metrics is not None else Metrics()
        self._clock = clock
        self.limiter = limiter if limiter is not None else RateLimiter(settings, clock=clock, sleep=sleep)
        self._timeout = settings.timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport if transport is not None else default_transport(max_connections),
            auth=_BearerAuth(settings.resolved_api_key()),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(settings.timeout_s),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"AttentiveClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def ready_in(self, endpoint: Endpoint) -> float:
        """Seconds until ``endpoint``'s rate limiter would let a request go (0 when it would now).

        The delivery engine waits this out before taking a request slot, so a throttled endpoint never
        holds slots that other endpoints could use.
        """
        return float(self.limiter[endpoint].delay())

    async def send(self, call: Call) -> ApiResponse:
        """Deliver one :class:`~connector.types.Call`: wait for the endpoint's rate limiter, then ONE attempt.

        Returns the success; raises the classified :class:`~connector.errors.ApiError` otherwise (or
        :class:`~connector.errors.RoutingError` for a body that cannot be serialised, before any request).
        """
        endpoint = call.endpoint
        try:
            content = dumps(call.body)
        except (TypeError, ValueError) as exc:  # a body not built by build_body(); the record's fault
            raise RoutingError(f"{endpoint}: the request body is not JSON: {exc}", rule=call.rule) from None
        await self.limiter.acquire(endpoint)
        return await self._request(
            "POST",
            endpoint.path,
            endpoint=endpoint,
            label=str(endpoint),
            record_id=call.record_id,
            content=content,
        )

    async def me(self) -> MeInfo:
        """``GET /v1/me``: whom the key belongs to. Raises :class:`ApiAuthError` when the key is refused."""
        resp = await self._request("GET", ME_PATH, endpoint=None, label=ME, record_id="", content=None)
        body = resp.body if isinstance(resp.body, dict) else {}
        return MeInfo.model_validate(body)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: Endpoint | None,
        label: str,
        record_id: str,
        content: bytes | None,
    ) -> ApiResponse:
        headers = {"X-Record-Id": record_id} if record_id else {}
        m = self._metrics
        started = self._clock()
        m.in_flight_requests.inc()
        try:
            async with self._deadline():
                response = await self._http.request(method, path, content=content, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            m.api_requests.labels(label, status_class(None)).inc()
            raise self._network_error(exc, label, record_id) from None
        finally:
            m.in_flight_requests.dec()
        duration = self._clock() - started
        status = response.status_code
        m.api_requests.labels(label, status_class(status)).inc()
        m.api_request_duration.labels(label).observe(duration)
        if endpoint is not None:
            self.limiter.observe_headers(endpoint, response.headers, sent_at=started)
            remaining = response.headers.get("x-ratelimit-remaining")
            if remaining is not None and remaining.strip().lstrip("-").isdigit():
                m.rate_limit_remaining.labels(label).set(int(remaining))
        text = response.text
        error = classify(label, status, response.headers, text, record_id=record_id)
        log.debug("attentive %s %s -> %s in %.1f ms", label, record_id or "-", status, duration * 1000)
        if error is not None:
            if isinstance(error, RateLimitedError) and endpoint is not None and error.retry_after is not None:
                self.limiter.hold(endpoint, error.retry_after)
            raise error
        return ApiResponse(label, status, _parse(text), record_id, duration)

    def _network_error(self, exc: BaseException, label: str, record_id: str) -> NetworkError:
        where = label + (f" (record {record_id})" if record_id else "")
        # httpx-aiohttp reports a refused connection as ConnectTimeout; look at the cause to say which it was.
        refused = isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(
            exc.__cause__, aiohttp.ServerTimeoutError
        )
        if isinstance(exc, httpx.TimeoutException | TimeoutError) and not refused:
            return NetworkError(
                f"timed out after {self._timeout:g}s calling {where}", endpoint=label, reason="timeout"
            )
        detail = str(exc.__cause__ or exc) or type(exc).__name__
        return NetworkError(
            f"cannot reach Attentive at {self.base_url} for {where}: {detail}", endpoint=label
        )

    def _deadline(self) -> asyncio.Timeout:
        # Belt and braces over the transport's own timeouts: no attempt outlives timeout_s by much.
        return asyncio.timeout(self._timeout + 1.0)


def _parse(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return loads(text)
    except ValueError:
        return None
