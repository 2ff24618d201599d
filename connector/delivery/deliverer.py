"""Deliver one call: wait for the auth gate and the endpoint's circuit, send, retry until done or hopeless.

The in-flight bound (``max_in_flight``) is a semaphore held only while a request is (about to be) on the
wire — never during a backoff sleep, a wait at a gate, or a rate-limit wait — so a retrying record holds
only its own lane, and a throttled endpoint cannot take every request slot from the others:

* before taking a slot, a call waits until its endpoint's rate limiter would let it go (the client's
  ``ready_in(endpoint)``, when the sender has one: a 429 hold or pacing is waited out slot-free); once it
  has the slot it checks again — another call may have taken that turn meanwhile — and if so gives the slot
  back and waits again, so ``send`` never sleeps in the limiter while holding a slot;
* each endpoint may use at most ``endpoint_limits[endpoint]`` slots (the runtime sets it from the endpoint's
  rate limit, so subscribe at 10/s can never occupy 64 slots while custom events wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connector.delivery.auth import AuthGate
from connector.delivery.circuit import CircuitBoard
from connector.delivery.protocols import ApiSender
from connector.delivery.retry import CallAttempts, RetryPolicy, Verdict
from connector.errors import RateLimitedError
from connector.observability.metrics import Metrics
from connector.types import Call

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The call can never be delivered (permanent error, or its retry budget is spent): dead-letter it."""

    def __init__(self, call: Call, error: BaseException, attempts: CallAttempts) -> None:
        super().__init__(f"{call.record_id}: {type(error).__name__}")
        self.call = call
        self.error = error
        self.attempts = attempts


class _GateClosed(Exception):
    """Internal: the auth gate closed while a call waited for a request slot."""


class CallDeliverer:
    """Sends calls with retries, honouring the auth gate, the per-endpoint circuits and the in-flight bound."""

    def __init__(
        self,
        sender: ApiSender,
        *,
        policy: RetryPolicy,
        circuits: CircuitBoard,
        auth: AuthGate,
        max_in_flight: int,
        metrics: Metrics,
        endpoint_limits: dict[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sender = sender
        self._policy = policy
        self._circuits = circuits
        self._auth = auth
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_in_flight = max_in_flight
        self._endpoint_limits = dict(endpoint_limits or {})
        self._endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def deliver(self, call: Call, attempts: CallAttempts | None = None) -> Any:
        """Send ``call`` until it succeeds (returns the response) or raises :class:`DeliveryFailed`."""
        state = attempts if attempts is not None else CallAttempts()
        endpoint = str(call.endpoint)
        while True:
            await self._auth.wait_ok()
            probe = await self._circuits.acquire(endpoint)
            try:
                response = await self._send(call, endpoint)
            except asyncio.CancelledError:
                self._circuits.neutral(endpoint, probe=probe)
                raise
            except _GateClosed:
                self._circuits.neutral(endpoint, probe=probe)
                continue
            except Exception as exc:
                if getattr(exc, "auth", False):
                    self._circuits.neutral(endpoint, probe=probe)
                    self._auth.trip(exc)
                    continue
                self._classify(endpoint, exc, probe)
                circuit = self._circuits.circuit(endpoint)
                decision = self._policy.on_failure(
                    state, exc, now=self._clock(), circuit_open=circuit.is_open, circuit_epoch=circuit.epoch
                )
                if decision.verdict is Verdict.DEAD_LETTER:
                    raise DeliveryFailed(call, exc, state) from exc
                self._metrics.api_retries.labels(endpoint, decision.reason).inc()
                log.debug(
                    "retrying %s in %.2fs after %s",
                    call.record_id,
                    decision.delay_s,
                    type(exc).__name__,
                    extra={"record_id": call.record_id, "endpoint": endpoint},
                )
                if decision.delay_s > 0:
                    await self._sleep(decision.delay_s)
                continue
            self._circuits.success(endpoint, probe=probe)
            return response

    async def _send(self, call: Call, endpoint: str) -> Any:
        # The in_flight_requests gauge is the client's (it counts requests on the wire, after its limiter).
        while True:
            await self._until_rate_limit_allows(call)
            async with self._endpoint_slot(endpoint), self._slots:
                if not self._auth.ok:
                    # The key was refused while this call queued for a slot: don't send it just to get a 401.
                    raise _GateClosed
                if not self._rate_limit_allows(call):
                    # Another call took the limiter's turn while this one queued for a slot: give the slot
                    # back and wait for the next turn slot-free.
                    continue
                # No await between the check above and the limiter's reservation inside send(): the turn
                # seen free is the one this call takes (one event loop), so send() does not wait holding a slot.
                self._in_flight += 1
                try:
                    return await self._sender.send(call)
                finally:
                    self._in_flight -= 1

    def _endpoint_slot(self, endpoint: str) -> asyncio.Semaphore:
        sem = self._endpoint_slots.get(endpoint)
        if sem is None:
            limit = min(self._max_in_flight, max(1, self._endpoint_limits.get(endpoint, self._max_in_flight)))
            sem = self._endpoint_slots[endpoint] = asyncio.Semaphore(limit)
        return sem

    async def _until_rate_limit_allows(self, call: Call) -> None:
        ready_in = getattr(self._sender, "ready_in", None)
        if ready_in is None:
            return
        while True:
            delay = float(ready_in(call.endpoint))
            if delay <= 0:
                return
            await self._sleep(min(delay, 1.0))

    def _rate_limit_allows(self, call: Call) -> bool:
        ready_in = getattr(self._sender, "ready_in", None)
        return ready_in is None or float(ready_in(call.endpoint)) <= 0

    def _classify(self, endpoint: str, exc: BaseException, probe: bool) -> None:
        if isinstance(exc, RateLimitedError):
            self._circuits.neutral(endpoint, probe=probe)
        elif getattr(exc, "permanent", False):
            # The endpoint answered and judged the request: it is up.
            self._circuits.success(endpoint, probe=probe)
        else:
            self._circuits.failure(endpoint, probe=probe)
