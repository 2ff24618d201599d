"""Async Attentive API client: one attempt per :meth:`AttentiveClient.send`, classified into the error tree.

The delivery engine owns retries, circuits and pausing; this client does exactly one HTTP attempt after
waiting for the endpoint's rate limiter, and turns the answer into either an :class:`ApiResponse` or one of
:class:`~connector.errors.ApiTransientError` (429 → :class:`RateLimitedError`, 5xx, timeouts and connection
failures → :class:`NetworkError`), :class:`ApiPermanentError` (400/404/413/422 and other 4xx) or
:class:`ApiAuthError` (401/403). Subscribe's ``202 PREVIOUSLY_CREATED`` and a ``409`` on subscribe are
successes (the subscription exists).

Requests carry ``Authorization: Bearer <key>``, ``Content-Type: application/json``, ``X-Record-Id`` and a
``User-Agent``; the static ones are built once per endpoint together with the path, the limiter and the metric
children, so a request costs one header-dict copy. They go through the project's own HTTP seam,
:mod:`connector.attentive.transport` (aiohttp in production, ``httpx.MockTransport`` or a mock in tests).
Bodies are serialised with :func:`connector.attentive.jsonio.dumps`, which keeps decimal prices exact; only
subscribe/unsubscribe answers are parsed (the engine reads their statuses), others are not decoded at all.
The rate-limit headers are read once per answer and feed both the limiter and the gauge.

The key is a ``SecretStr`` from the settings and appears in no repr, message, log line or metric.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

from connector import __version__
from connector.attentive.endpoints import ME_PATH, Endpoint
from connector.attentive.jsonio import dumps, loads
from connector.attentive.models import MeInfo
from connector.attentive.ratelimit import RateLimiter
from connector.attentive.transport import (
    AiohttpTransport,
    AttentiveTransport,
    HttpxTransport,
    TransportFailure,
)
from connector.config import AttentiveSettings
from connector.errors import (
    ApiAuthError,
    ApiError,
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
    Reason,
    RoutingError,
)
from connector.observability.metrics import Metrics, status_class
from connector.types import Call, Clock, Sleep

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


def default_transport(base_url: str, max_connections: int, timeout_s: float) -> AttentiveTransport:
    """The transport used when none is injected: :class:`AiohttpTransport` (see ``transport.py`` for why).

    The pool allows ``max_connections`` connections (≥ the engine's max_in_flight).
    """
    return AiohttpTransport(base_url, max_connections=max_connections, timeout_s=timeout_s)


def httpx_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """httpx's own transport (httpcore), with the same pool size; kept for comparison (wrap it in
    :class:`HttpxTransport` or pass it as ``transport=``)."""
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
    if math.isnan(seconds):
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
        reason=Reason.UNEXPECTED_STATUS,
    )


class _Route:
    """What one endpoint's requests share, built once: path, headers, limiter and metric children.

    ``headers`` holds the Authorization header: the repr shows neither it nor any other header.
    """

    __slots__ = (
        "duration",
        "endpoint",
        "headers",
        "label",
        "metrics",
        "parse_body",
        "path",
        "remaining",
        "requests",
    )

    def __init__(
        self,
        endpoint: Endpoint | None,
        path: str,
        label: str,
        headers: dict[str, str],
        metrics: Metrics,
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        self.label = label
        self.headers = headers
        self.metrics = metrics
        # The engine reads a response body only for subscribe/unsubscribe (ApiResponse.already_done); /v1/me
        # is parsed by me(). Every other 2xx body is not even decoded.
        self.parse_body = endpoint is None or endpoint in _PARSED
        self.requests: dict[int | None, Any] = {}  # status -> api_requests child
        self.duration = metrics.api_request_duration.labels(label)
        self.remaining = metrics.rate_limit_remaining.labels(label)

    def count(self, status: int | None) -> None:
        child = self.requests.get(status)
        if child is None:
            child = self.requests[status] = self.metrics.api_requests.labels(self.label, status_class(status))
        child.inc()

    def __repr__(self) -> str:
        return f"_Route({self.label!r}, {self.path!r})"


# Subscribe/unsubscribe statuses are read by the engine; a deletion request's id is logged for the audit trail.
_PARSED = frozenset({Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE, Endpoint.PRIVACY_DELETE})


class AttentiveClient:
    """Async client for the Attentive endpoints the connector uses (see module docstring).

    >>> client = AttentiveClient(settings.attentive, metrics=metrics)      # doctest: +SKIP
    >>> if client.ready_in(call.endpoint) <= 0:                            # doctest: +SKIP
    ...     response = await client.send(call)  # takes the limiter turn without sleeping, ONE attempt

    ``transport`` is an :class:`~connector.attentive.transport.AttentiveTransport` or any
    ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests); default: aiohttp.
    """

    def __init__(
        self,
        settings: AttentiveSettings,
        *,
        transport: AttentiveTransport | httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
        clock: Clock = time.monotonic,
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
        if transport is None:
            transport = default_transport(self.base_url, max_connections, settings.timeout_s)
        elif isinstance(transport, httpx.AsyncBaseTransport):
            transport = HttpxTransport(self.base_url, transport, timeout_s=settings.timeout_s)
        self._transport: AttentiveTransport = transport
        static = {
            "Authorization": f"Bearer {settings.resolved_api_key().get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._routes = {e: _Route(e, e.path, str(e), static, self._metrics) for e in Endpoint}
        self._me = _Route(None, ME_PATH, ME, static, self._metrics)

    def __repr__(self) -> str:
        return f"AttentiveClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    def ready_in(self, endpoint: Endpoint) -> float:
        """Seconds until ``endpoint``'s rate limiter would let a request go (0 when it would now).

        The delivery engine waits this out before taking a request slot, so a throttled endpoint never
        holds slots that other endpoints could use.
        """
        return float(self.limiter[endpoint].delay())

    async def wait_turn(self, endpoint: Endpoint) -> None:
        """Reserve ``endpoint``'s next rate-limiter turn and wait until it is due (the delivery pumps take
        turns this way, then call :meth:`send` with ``turn_taken=True``, which tells the limiter when the
        request really went)."""
        await self.limiter.acquire(endpoint, ahead=True)

    def try_turn(self, endpoint: Endpoint) -> bool:
        """Take ``endpoint``'s next rate-limiter turn if it is due now, without waiting (True); else take
        nothing (False). Like :meth:`wait_turn`, follow it with :meth:`send` and ``turn_taken=True``."""
        return self.limiter.try_acquire(endpoint, ahead=True)

    async def send(self, call: Call, *, turn_taken: bool = False) -> ApiResponse:
        """Deliver one :class:`~connector.types.Call`: wait for the endpoint's rate limiter (unless the turn was
        taken with :meth:`wait_turn`), then ONE attempt.

        Returns the success; raises the classified :class:`~connector.errors.ApiError` otherwise (or
        :class:`~connector.errors.RoutingError` for a body that cannot be serialised, before any request).
        No await comes before the limiter's turn: when ``ready_in`` was <= 0 just before, it is taken at once.
        """
        route = self._routes[call.endpoint]
        try:
            content = dumps(call.body)
        except (TypeError, ValueError) as exc:  # a body not built by build_body(); the record's fault
            raise RoutingError(
                f"{call.endpoint}: the request body is not JSON: {exc}", rule=call.rule
            ) from None
        if turn_taken:
            self.limiter.went(call.endpoint)
        elif not self.limiter.try_acquire(call.endpoint):
            await self.limiter.acquire(call.endpoint)
        return await self._request(route, call.record_id, content)

    async def me(self) -> MeInfo:
        """``GET /v1/me``: whom the key belongs to. Raises :class:`ApiAuthError` when the key is refused."""
        resp = await self._request(self._me, "", None)
        body = resp.body if isinstance(resp.body, dict) else {}
        return MeInfo.model_validate(body)

    async def _request(self, route: _Route, record_id: str, content: bytes | None) -> ApiResponse:
        headers = route.headers.copy()
        if record_id:
            headers["X-Record-Id"] = record_id
        m = self._metrics
        started = self._clock()
        m.in_flight_requests.inc()
        try:
            if content is None:
                raw = await self._transport.get(route.path, headers)
            else:
                raw = await self._transport.post(route.path, content, headers)
        except TransportFailure as exc:
            route.count(None)
            raise self._network_error(exc, route.label, record_id) from None
        finally:
            m.in_flight_requests.dec()
        duration = self._clock() - started
        status = raw.status
        route.count(status)
        route.duration.observe(duration)
        endpoint = route.endpoint
        if endpoint is not None:
            # The rate-limit headers are read once, here; the limiter returns ``remaining`` for the gauge.
            remaining = self.limiter.observe_headers(endpoint, raw.headers, sent_at=started)
            if remaining is not None:
                route.remaining.set(remaining)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "attentive %s %s -> %s in %.1f ms", route.label, record_id or "-", status, duration * 1000
            )
        if 200 <= status < 300 or (status == 409 and endpoint is Endpoint.SUBSCRIBE):
            body = _parse(raw.body) if route.parse_body else None
            if endpoint is Endpoint.PRIVACY_DELETE and isinstance(body, dict):
                # The audit trail: Attentive's id for the request (GET /v1/privacy/delete-request/{id}).
                log.info(
                    "privacy delete request %s accepted by Attentive as id %s", record_id, body.get("id")
                )
            return ApiResponse(route.label, status, body, record_id, duration)
        text = raw.body.decode("utf-8", "replace")
        error = classify(route.label, status, raw.headers, text, record_id=record_id)
        if error is None:  # not reached: classify() calls exactly the statuses above a success
            return ApiResponse(route.label, status, None, record_id, duration)
        if error.flow_control and endpoint is not None and error.retry_after is not None:
            self.limiter.hold(endpoint, error.retry_after, sent_at=started)
        raise error

    def _network_error(self, exc: TransportFailure, label: str, record_id: str) -> NetworkError:
        where = label + (f" (record {record_id})" if record_id else "")
        if exc.timeout:
            return NetworkError(
                f"timed out after {self._timeout:g}s calling {where}", endpoint=label, reason=Reason.TIMEOUT
            )
        return NetworkError(
            f"cannot reach Attentive at {self.base_url} for {where}: {exc.detail}", endpoint=label
        )


def _parse(data: bytes) -> Any:
    if not data.strip():
        return None
    try:
        return loads(data)
    except ValueError:
        return None
