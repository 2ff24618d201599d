"""The local Attentive stand-in as an aiohttp application: :func:`make_app`.

Serves the endpoints the connector uses under ``/v1`` (plus ``GET /v1/me``), the way Attentive does:

1. ``Authorization: Bearer <key>`` or 401 (also during an injected 401 window, ``/v1/me`` included);
2. per-endpoint fixed one-second rate windows (Attentive's limits unless changed), ``x-ratelimit-limit`` /
   ``x-ratelimit-remaining`` on every answer, 429 with ``Retry-After`` over the limit;
3. injected faults (error statuses by probability), decided before validation;
4. the body checked by :class:`~connector.attentive.spec.SpecValidator` (Attentive's own OpenAPI schemas plus
   the documented rules): 400 ``{"error": {"id", "message"}}`` naming each bad field (privacy deletions:
   ``{"error": "..."}``, the spec's ``PrivacyRequestErrorDto``);
5. the answer: 200 for events and attributes, 202 with per-subscription status for (un)subscribe, 202 without
   a body for identity ("Request processed"), 200 ``{"id": ...}`` (``PrivacyRequestDto``) for a deletion
   request, which ``GET /v1/privacy/delete-request/{id}`` then returns with the subject masked.

Identity links are remembered, and events naming their person only by external identifiers are counted as
attributed or not (see :mod:`connector.sandbox.identities`; ``GET /__sandbox/stats`` → ``identity``).

Injected latency (fixed + jitter) delays every ``/v1`` answer. Every ``/v1`` request is journaled.
Control API (no auth; it is a local test tool): ``GET|POST /__sandbox/faults``, ``GET|DELETE
/__sandbox/requests``, ``GET /__sandbox/stats``, ``POST /__sandbox/reset``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from connector.attentive.endpoints import ME_PATH, Endpoint
from connector.attentive.jsonio import dumps, loads
from connector.attentive.spec import SpecValidator, default_validator
from connector.sandbox.faults import Faults, FaultsError
from connector.sandbox.identities import Identities, PrivacyRequests
from connector.sandbox.journal import Journal
from connector.sandbox.ratewindow import FixedWindow
from connector.sandbox.subscriptions import Subscriptions

ME_INFO = {
    "applicationName": "attentive-connector sandbox",
    "attentiveDomainName": "sandbox.attn.tv",
    "companyName": "Sandbox Retail",
    "contactEmail": "sandbox@example.com",
    "companyId": "U2FuZGJveFJldGFpbA",
}
_JSON = "application/json"
PRIVACY_REQUEST_PATH = Endpoint.PRIVACY_DELETE.path + "/{id}"
# Calls whose body names a person by EventUser: counted as attributed or not when only external ids are given.
_EVENT_USER_APIS = frozenset(
    {
        Endpoint.PRODUCT_VIEW,
        Endpoint.ADD_TO_CART,
        Endpoint.PURCHASE,
        Endpoint.CUSTOM_EVENT,
        Endpoint.CUSTOM_ATTRIBUTES,
    }
)


@dataclass
class SandboxSettings:
    """How a sandbox behaves. ``faults`` uses the ``POST /__sandbox/faults`` document format."""

    api_key: str = field(repr=False)
    validate: bool = True
    strict_top_level: bool = True
    rate_limit: bool = True
    rate_limits: dict[Endpoint, int] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    journal_max: int = 1_000_000
    seed: int | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def limit(self, endpoint: Endpoint) -> int:
        return int(self.rate_limits.get(endpoint, endpoint.default_rate_limit))


class Sandbox:
    """State and request handling of one sandbox (see module docstring)."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._auth = f"Bearer {settings.api_key}"
        self._clock = settings.clock
        self._sleep = settings.sleep
        self.rng = random.Random(settings.seed)
        self.validator: SpecValidator | None = None
        if settings.validate:
            self.validator = (
                default_validator() if settings.strict_top_level else SpecValidator(strict_top_level=False)
            )
        self.windows = {e: FixedWindow(settings.limit(e)) for e in Endpoint}
        self.faults = Faults.parse(settings.faults, now=self._clock())
        self.journal = Journal(settings.journal_max)
        self.subscriptions = Subscriptions()
        self.identities = Identities()
        self.privacy = PrivacyRequests()
        self._error_ids = itertools.count(1)

    # --- /v1 ---------------------------------------------------------------------------------------

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        body = dumps({"error": {"id": next(self._error_ids), "message": message}})
        return web.Response(status=status, body=body, content_type=_JSON, headers=headers)

    async def handle_endpoint(self, request: web.Request, endpoint: Endpoint) -> web.Response:
        now = self._clock()
        raw = await request.read()
        response = self._answer(request, endpoint, raw, now)
        delay = self.faults.delay_s(self.rng)
        self.journal.record(
            request.method,
            request.path,
            request.headers.get("X-Record-Id"),
            raw,
            response.status,
            time.time(),
            delay,
        )
        if delay:
            await self._sleep(delay)
        return response

    def _answer(self, request: web.Request, endpoint: Endpoint, raw: bytes, now: float) -> web.Response:
        if request.headers.get("Authorization") != self._auth or self.faults.unauthorized(now):
            return self._error(401, "Unauthorized", {})
        headers: dict[str, str] = {}
        if self.settings.rate_limit:
            d = self.windows[endpoint].take(now)
            headers["x-ratelimit-limit"] = str(d.limit)
            headers["x-ratelimit-remaining"] = str(d.remaining)
            if not d.allowed:
                headers["Retry-After"] = str(d.retry_after_s)
                return self._error(
                    429, "The user has sent too many requests in a given amount of time", headers
                )
        injected = self.faults.pick_error(self.rng)
        if injected is not None:
            if injected == 429:
                headers["Retry-After"] = "1"
            return self._error(injected, f"injected fault: HTTP {injected}", headers)
        subscriber = endpoint is Endpoint.SUBSCRIBE or endpoint is Endpoint.UNSUBSCRIBE
        privacy = endpoint is Endpoint.PRIVACY_DELETE
        if self.validator is None and not subscriber and not privacy:
            # --no-validate: raw speed, body not even parsed
            return web.Response(status=202 if endpoint is Endpoint.IDENTITY else 200, headers=headers)
        try:
            body = loads(raw)
        except ValueError:
            return self._invalid(endpoint, "$: request body is not valid JSON", headers)
        if self.validator is not None:
            problems = self.validator.validate(endpoint, body)
            if problems:
                return self._invalid(endpoint, "; ".join(problems), headers)
        if endpoint is Endpoint.IDENTITY:
            if isinstance(body, Mapping):
                self.identities.link(body)
            return web.Response(status=202, headers=headers)
        if privacy:
            if not isinstance(body, Mapping):
                return self._invalid(endpoint, "$: expected object", headers)
            request_id = self.privacy.add(body, now)
            return web.Response(
                status=200, body=dumps({"id": request_id}), content_type=_JSON, headers=headers
            )
        if endpoint in _EVENT_USER_APIS and isinstance(body, Mapping):
            self.identities.observe_event(body)
        if subscriber:
            if not isinstance(body, Mapping):
                return self._error(400, "$: expected object", headers)
            result = (
                self.subscriptions.subscribe(body)
                if endpoint is Endpoint.SUBSCRIBE
                else self.subscriptions.unsubscribe(body)
            )
            return web.Response(status=202, body=dumps(result), content_type=_JSON, headers=headers)
        return web.Response(status=200, headers=headers)

    def _invalid(self, endpoint: Endpoint, message: str, headers: dict[str, str]) -> web.Response:
        """400 for a bad body; privacy deletions answer ``PrivacyRequestErrorDto`` (``{"error": "..."}``)."""
        if endpoint is Endpoint.PRIVACY_DELETE:
            return web.Response(
                status=400, body=dumps({"error": message}), content_type=_JSON, headers=headers
            )
        return self._error(400, message, headers)

    async def handle_privacy_request(self, request: web.Request) -> web.Response:
        """``GET /v1/privacy/delete-request/{id}``: the request as ``PrivacyRequestDto``, subject masked."""
        now = self._clock()
        if request.headers.get("Authorization") != self._auth or self.faults.unauthorized(now):
            response = self._error(401, "Unauthorized", {})
        else:
            found = self.privacy.get(request.match_info["id"])
            response = (
                web.Response(status=200, body=dumps(found), content_type=_JSON)
                if found is not None
                else self._error(404, "The specified resource was not found", {})
            )
        self.journal.record(request.method, request.path, None, b"", response.status, time.time())
        return response

    async def handle_me(self, request: web.Request) -> web.Response:
        now = self._clock()
        if request.headers.get("Authorization") != self._auth or self.faults.unauthorized(now):
            response = self._error(401, "Unauthorized", {})
        else:
            response = web.Response(status=200, body=dumps(ME_INFO), content_type=_JSON)
        delay = self.faults.delay_s(self.rng)
        self.journal.record(
            request.method,
            request.path,
            request.headers.get("X-Record-Id"),
            b"",
            response.status,
            time.time(),
            delay,
        )
        if delay:
            await self._sleep(delay)
        return response

    # --- control API --------------------------------------------------------------------------------

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.to_json(now=self._clock()))

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            doc = loads(await request.read() or b"{}")
            self.faults = Faults.parse(_floats(doc), now=self._clock())
        except (ValueError, FaultsError) as exc:
            return _json({"error": {"message": f"faults: {exc}"}}, status=400)
        return _json(self.faults.to_json(now=self._clock()))

    async def get_requests(self, request: web.Request) -> web.Response:
        """The journal; ``?last=N`` for only the newest N entries."""
        last = request.query.get("last")
        if last is not None and not last.isdigit():
            return _json({"error": {"message": "last must be a whole number"}}, status=400)
        return _json(self.journal.to_json(last=int(last) if last is not None else None))

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.journal.clear()
        return _json({"cleared": True})

    async def get_stats(self, request: web.Request) -> web.Response:
        stats = self.journal.stats()
        stats["identity"] = self.identities.stats()
        stats["privacy"] = {"delete_requests": len(self.privacy)}
        return _json(stats)

    async def reset(self, request: web.Request) -> web.Response:
        """Journal, faults, subscriptions, identity links, deletion requests and rate windows back to the start
        (flags' faults are dropped too)."""
        self.journal.clear()
        self.faults = Faults()
        self.subscriptions.clear()
        self.identities.clear()
        self.privacy.clear()
        self.windows = {e: FixedWindow(self.settings.limit(e)) for e in Endpoint}
        return _json({"reset": True})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(data), content_type=_JSON)


def _floats(doc: Any) -> Any:
    """Decimals from :func:`loads` back to floats for the faults document."""
    if isinstance(doc, dict):
        return {k: _floats(v) for k, v in doc.items()}
    if isinstance(doc, int | str) or doc is None:  # bool is an int
        return doc
    try:
        return float(doc)
    except (TypeError, ValueError):
        return doc


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)


def make_app(settings: SandboxSettings) -> web.Application:
    """The sandbox as an aiohttp application (run it with ``web.AppRunner`` or aiohttp's test server)."""
    sandbox = Sandbox(settings)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[SANDBOX_KEY] = sandbox
    for endpoint in Endpoint:
        app.router.add_post(endpoint.path, _bind(sandbox, endpoint))
    app.router.add_get(ME_PATH, sandbox.handle_me)
    app.router.add_get(PRIVACY_REQUEST_PATH, sandbox.handle_privacy_request)
    app.router.add_get("/__sandbox/faults", sandbox.get_faults)
    app.router.add_post("/__sandbox/faults", sandbox.set_faults)
    app.router.add_get("/__sandbox/requests", sandbox.get_requests)
    app.router.add_delete("/__sandbox/requests", sandbox.clear_requests)
    app.router.add_get("/__sandbox/stats", sandbox.get_stats)
    app.router.add_post("/__sandbox/reset", sandbox.reset)
    return app


def _bind(sandbox: Sandbox, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return await sandbox.handle_endpoint(request, endpoint)

    return handler
