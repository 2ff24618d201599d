"""Liveness, readiness and the metrics endpoint: one small aiohttp server on ``METRICS_PORT``.

* ``/healthz`` answers whether the poll loop is alive: 200 while the last Kafka poll is recent, 503 once it
  is older than ``poll_stale_after_s``. It deliberately ignores broker reachability and Attentive's health:
  a broker outage must show up as "not ready", not restart every pod in a loop.
* ``/readyz`` answers whether this replica should count as serving: config loaded, broker reachable,
  partitions assigned (or subscribed and awaiting assignment, which is normal with more replicas than
  partitions), Attentive accepted the API key, and not shutting down. A 503 carries the reasons as JSON.
* ``/metrics`` is the Prometheus text exposition of the injected registry.

The engine owns a :class:`HealthState` and sets its fields from whatever thread it runs on; the server
only reads it. Usage::

    state = HealthState(poll_stale_after_s=60)
    server = HealthServer(metrics, state, port=0)
    await server.start()          # in the running event loop
    state.config_loaded = True
    state.mark_poll()             # from the poll loop, every iteration
    ...
    await server.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connector.observability.metrics import Metrics

__all__ = ["AssignmentState", "HealthServer", "HealthState"]

AssignmentState = Literal["starting", "waiting", "assigned"]
"""``starting``: not subscribed yet; ``waiting``: subscribed, awaiting assignment; ``assigned``: owns some."""

_ASSIGNMENT_STATES: frozenset[str] = frozenset({"starting", "waiting", "assigned"})


class HealthState:
    """What the engine knows about its own health; thread-safe, read by :class:`HealthServer`.

    Every field starts pessimistic (not loaded, not reachable, not checked) so a replica is only ready
    once the engine has positively confirmed each condition. Listeners added with :meth:`add_listener`
    are called (outside the lock) whenever readiness may have changed; the server uses one to keep the
    ``attentive_connector_ready`` gauge in sync.

    :param poll_stale_after_s: how old the last poll may be before ``/healthz`` fails. Until the first
        poll the start time counts as the last poll, so start-up gets the same grace.
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        poll_stale_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_stale_after_s <= 0:
            raise ValueError("poll_stale_after_s must be positive")
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._poll_stale_after_s = poll_stale_after_s
        self._config_loaded = False
        self._broker_reachable = False
        self._broker_error: str | None = None
        self._assignment_state: AssignmentState = "starting"
        self._auth_ok = False
        self._shutting_down = False
        self._last_poll: float | None = None
        self._listeners: list[Callable[[bool], None]] = []

    # -- fields the engine sets -------------------------------------------------------------------

    @property
    def config_loaded(self) -> bool:
        with self._lock:
            return self._config_loaded

    @config_loaded.setter
    def config_loaded(self, value: bool) -> None:
        self._set("_config_loaded", bool(value))

    @property
    def broker_reachable(self) -> bool:
        with self._lock:
            return self._broker_reachable

    @broker_reachable.setter
    def broker_reachable(self, value: bool) -> None:
        if value:
            self._set("_broker_error", None)  # reachable again: the last error no longer applies
        self._set("_broker_reachable", bool(value))

    @property
    def broker_error(self) -> str | None:
        """The last Kafka client error while the broker is unreachable (e.g. ``Connection refused``)."""
        with self._lock:
            return self._broker_error

    @broker_error.setter
    def broker_error(self, value: str | None) -> None:
        self._set("_broker_error", value)

    @property
    def assignment_state(self) -> AssignmentState:
        with self._lock:
            return self._assignment_state

    @assignment_state.setter
    def assignment_state(self, value: AssignmentState) -> None:
        if value not in _ASSIGNMENT_STATES:
            raise ValueError(f"assignment_state must be one of {sorted(_ASSIGNMENT_STATES)}, not {value!r}")
        self._set("_assignment_state", value)

    @property
    def auth_ok(self) -> bool:
        with self._lock:
            return self._auth_ok

    @auth_ok.setter
    def auth_ok(self, value: bool) -> None:
        self._set("_auth_ok", bool(value))

    @property
    def shutting_down(self) -> bool:
        with self._lock:
            return self._shutting_down

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        self._set("_shutting_down", bool(value))

    @property
    def last_poll(self) -> float | None:
        """Monotonic time of the last poll, or None before the first one."""
        with self._lock:
            return self._last_poll

    @last_poll.setter
    def last_poll(self, value: float | None) -> None:
        with self._lock:
            self._last_poll = value

    @property
    def poll_stale_after_s(self) -> float:
        with self._lock:
            return self._poll_stale_after_s

    @poll_stale_after_s.setter
    def poll_stale_after_s(self, value: float) -> None:
        if value <= 0:
            raise ValueError("poll_stale_after_s must be positive")
        with self._lock:
            self._poll_stale_after_s = float(value)

    def mark_poll(self) -> None:
        """Record that the poll loop just polled (call it every iteration, even when nothing came back)."""
        now = self._clock()
        with self._lock:
            self._last_poll = now

    # -- what the server asks ---------------------------------------------------------------------

    def poll_age(self) -> float:
        """Seconds since the last poll (or since start, before the first poll)."""
        with self._lock:
            since = self._last_poll if self._last_poll is not None else self._started
        return max(0.0, self._clock() - since)

    def alive(self) -> bool:
        """True while the poll loop has polled within ``poll_stale_after_s``."""
        return self.poll_age() <= self.poll_stale_after_s

    def ready(self) -> tuple[bool, list[str]]:
        """``(ready, reasons)``: reasons name every unmet condition, empty when ready."""
        with self._lock:
            reasons: list[str] = []
            if not self._config_loaded:
                reasons.append("config not loaded")
            if not self._broker_reachable:
                why = f": {self._broker_error}" if self._broker_error else ""
                reasons.append(f"Kafka broker not reachable{why}")
            if self._assignment_state == "starting":
                reasons.append("consumer not subscribed yet")
            if not self._auth_ok:
                reasons.append("Attentive API key not accepted (auth check failed or pending)")
            if self._shutting_down:
                reasons.append("shutting down")
        return (not reasons, reasons)

    def snapshot(self) -> dict[str, object]:
        """All fields as plain values (for the JSON bodies)."""
        with self._lock:
            return {
                "config_loaded": self._config_loaded,
                "broker_reachable": self._broker_reachable,
                "broker_error": self._broker_error,
                "assignment_state": self._assignment_state,
                "auth_ok": self._auth_ok,
                "shutting_down": self._shutting_down,
            }

    def add_listener(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``listener(ready)`` now and after every change; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)
        listener(self.ready()[0])

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _set(self, attr: str, value: object) -> None:
        with self._lock:
            changed = getattr(self, attr) != value
            setattr(self, attr, value)
            listeners = list(self._listeners) if changed else []
        if listeners:
            ready = self.ready()[0]
            for listener in listeners:
                listener(ready)


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from the caller's asyncio loop.

    :param metrics: whose ``registry`` is exposed and whose ``ready`` gauge is kept in sync with ``state``.
    :param state: the engine's :class:`HealthState`.
    :param host: interface to bind (``0.0.0.0`` in a pod; ``127.0.0.1`` in tests).
    :param port: TCP port; 0 picks a free one, readable from :attr:`port` after :meth:`start`.
    """

    def __init__(
        self,
        metrics: Metrics,
        state: HealthState,
        host: str = "0.0.0.0",  # noqa: S104 - kubelet probes and Prometheus reach the pod IP
        port: int = 9400,
    ) -> None:
        self._metrics = metrics
        self._state = state
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._remove_listener: Callable[[], None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("HealthServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for local clients, e.g. ``http://127.0.0.1:9400``."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host  # noqa: S104 - a comparison
        return f"http://{host}:{self.port}"

    def build_app(self) -> web.Application:
        """The aiohttp application (exposed so tests can drive it with aiohttp's test client too)."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/healthz", self._handle_healthz)
        app.router.add_get("/readyz", self._handle_readyz)
        return app

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` when the port is taken."""
        if self._runner is not None:
            raise RuntimeError("HealthServer already started")
        # Probes hit these endpoints every few seconds: an access log line per probe is noise.
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._remove_listener = self._state.add_listener(self._sync_ready_gauge)

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _sync_ready_gauge(self, ready: bool) -> None:
        self._metrics.ready.set(1 if ready else 0)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        # The ready gauge also tracks the state on every scrape, in case a listener call was missed.
        self._sync_ready_gauge(self._state.ready()[0])
        body = generate_latest(self._metrics.registry)
        resp = web.Response(body=body)
        # CONTENT_TYPE_LATEST carries a charset; aiohttp wants it in the header, not in content_type=.
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def _handle_healthz(self, request: web.Request) -> web.Response:
        age = self._state.poll_age()
        alive = self._state.alive()
        body = {
            "status": "alive" if alive else "stale",
            "last_poll_age_s": round(age, 3),
            "poll_stale_after_s": self._state.poll_stale_after_s,
        }
        return web.json_response(body, status=200 if alive else 503)

    async def _handle_readyz(self, request: web.Request) -> web.Response:
        ready, reasons = self._state.ready()
        self._sync_ready_gauge(ready)
        body = {"ready": ready, "reasons": reasons, "checks": self._state.snapshot()}
        return web.json_response(body, status=200 if ready else 503)
