"""Per-endpoint circuit breaker: tell an endpoint-wide outage from one bad record.

When most recent calls to an endpoint fail (``failure_ratio`` of at least ``min_calls`` outcomes within
``window_s``), the circuit *opens*: calls to that endpoint wait instead of being sent, and failing records
are not dead-lettered for their attempts or age (the endpoint is down, not the record). After ``open_s``
one *probe* call goes through (half-open); its success closes the circuit and releases every waiting call,
its failure opens it for another ``open_s``.

Outcomes are classified by the caller: 5xx and network errors are failures; any HTTP answer that shows the
endpoint working (2xx, and also 400/422 — the endpoint judged the request) is a success; 429 and auth
errors are neither (flow control and credentials are handled elsewhere).

:class:`Circuit` is the pure state machine (clock injected); :class:`CircuitBoard` adds the asyncio waiting
and the ``circuit_open{endpoint}`` gauge.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connector.asyncutil import wait_event
from connector.config import CircuitSettings
from connector.observability.metrics import Metrics
from connector.types import Clock

log = logging.getLogger(__name__)


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer to "may I send now?": ``go`` (``probe`` when it is the half-open probe) or wait."""

    go: bool
    probe: bool = False
    wait_s: float = 0.0


_GO = Permit(go=True)  # a closed circuit's answer, every call (frozen, so one is enough)


class Circuit:
    """The state machine of one endpoint's circuit. Not thread-safe; used from the event loop only."""

    def __init__(self, settings: CircuitSettings, *, clock: Clock = time.monotonic) -> None:
        self._s = settings
        self._clock = clock
        self._window: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._state = CircuitState.CLOSED
        self._open_until = 0.0
        self._probe_in_flight = False
        self.epoch = 0
        """Increases each time the circuit closes again; retry state keyed on it resets after an outage."""

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def probe_in_flight(self) -> bool:
        return self._probe_in_flight

    @property
    def is_open(self) -> bool:
        """True while the endpoint is treated as down (open or half-open)."""
        return self._state is not CircuitState.CLOSED

    def permit(self) -> Permit:
        """May a call be sent now? Half-open lets exactly one probe through at a time."""
        if self._state is CircuitState.CLOSED:
            return _GO
        now = self._clock()
        if self._state is CircuitState.OPEN:
            if now < self._open_until:
                return Permit(go=False, wait_s=self._open_until - now)
            self._state = CircuitState.HALF_OPEN
        if self._probe_in_flight:
            # Wait for the probe's answer; re-check at least every open_s in case it never comes.
            return Permit(go=False, wait_s=self._s.open_s)
        self._probe_in_flight = True
        return Permit(go=True, probe=True)

    def record_success(self, *, probe: bool = False) -> None:
        """The endpoint answered. A probe's success, or any success while half-open, closes the circuit."""
        if probe:
            self._probe_in_flight = False
        if self._state is CircuitState.CLOSED:
            self._add(ok=True)
            return
        if self._state is CircuitState.HALF_OPEN or probe:
            self._close()
        # A success while OPEN comes from a call sent before the circuit opened: not proof of recovery.

    def record_failure(self, *, probe: bool = False) -> None:
        """The endpoint failed (5xx or network). May open the circuit."""
        if probe:
            self._probe_in_flight = False
        if self._state is CircuitState.CLOSED:
            self._add(ok=False)
            total = len(self._window)
            if total >= self._s.min_calls and self._failures / total >= self._s.failure_ratio:
                self._open()
        elif probe or self._state is CircuitState.HALF_OPEN:
            self._open()

    def record_neutral(self, *, probe: bool = False) -> None:
        """An outcome that says nothing about the endpoint (429, auth, cancelled): frees the probe slot."""
        if probe:
            self._probe_in_flight = False

    def _add(self, *, ok: bool) -> None:
        now = self._clock()
        self._window.append((now, ok))
        if not ok:
            self._failures += 1
        horizon = now - self._s.window_s
        while self._window and self._window[0][0] < horizon:
            _, was_ok = self._window.popleft()
            if not was_ok:
                self._failures -= 1

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._open_until = self._clock() + self._s.open_s

    def _close(self) -> None:
        self._state = CircuitState.CLOSED
        self._window.clear()
        self._failures = 0
        self.epoch += 1


class CircuitBoard:
    """One :class:`Circuit` per endpoint, with asyncio waiting and the ``circuit_open`` gauge."""

    def __init__(
        self,
        settings: CircuitSettings,
        *,
        metrics: Metrics,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def circuit(self, endpoint: str) -> Circuit:
        c = self._circuits.get(endpoint)
        if c is None:
            c = self._circuits[endpoint] = Circuit(self._settings, clock=self._clock)
            self._changed[endpoint] = asyncio.Event()
            self._metrics.circuit_open.labels(endpoint).set(0)
        return c

    def open_endpoints(self) -> list[str]:
        return sorted(e for e, c in self._circuits.items() if c.is_open)

    def closed(self, endpoint: str) -> bool:
        """Whether ``endpoint``'s circuit is closed, so a call may go now and is no probe (the hot path's check,
        without a coroutine: :meth:`acquire` is for the other cases)."""
        c = self._circuits.get(endpoint)
        return c is not None and c.state is CircuitState.CLOSED

    async def acquire(self, endpoint: str) -> bool:
        """Wait until a call to ``endpoint`` may be sent; True when this call is the half-open probe."""
        c = self.circuit(endpoint)
        while True:
            permit = c.permit()
            if permit.go:
                return permit.probe
            event = self._changed[endpoint]
            await wait_event(event, max(permit.wait_s, 0.001))

    def success(self, endpoint: str, *, probe: bool) -> None:
        self._update(endpoint, lambda c: c.record_success(probe=probe))

    def failure(self, endpoint: str, *, probe: bool) -> None:
        self._update(endpoint, lambda c: c.record_failure(probe=probe))

    def neutral(self, endpoint: str, *, probe: bool) -> None:
        self._update(endpoint, lambda c: c.record_neutral(probe=probe))

    def _update(self, endpoint: str, change: Callable[[Circuit], None]) -> None:
        c = self.circuit(endpoint)
        before = (c.state, c.probe_in_flight)
        change(c)
        if (c.state, c.probe_in_flight) == before:
            return
        if c.is_open != (before[0] is not CircuitState.CLOSED):
            self._metrics.circuit_open.labels(endpoint).set(1 if c.is_open else 0)
            if c.is_open:
                log.warning(
                    "circuit opened for %s: most recent calls failed; holding its records (no dead-letters) "
                    "and probing every %.1fs",
                    endpoint,
                    self._settings.open_s,
                    extra={"endpoint": endpoint},
                )
            else:
                log.info(
                    "circuit closed for %s: the endpoint answers again",
                    endpoint,
                    extra={"endpoint": endpoint},
                )
        # Wake every waiter so it re-evaluates (a closed circuit releases them all, a freed probe slot one).
        event = self._changed[endpoint]
        event.set()
        self._changed[endpoint] = asyncio.Event()
