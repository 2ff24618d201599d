"""Deliver one call: wait for the auth gate and the endpoint's circuit, send, retry until done or hopeless.

The in-flight bound (``max_in_flight``) is a semaphore held only while a request is on the wire — never
during a backoff sleep, a wait at a gate, or a rate-limit wait — so a retrying record holds only its own
lane, and a throttled endpoint cannot take request slots from the others.

**One queue per endpoint.** A call that may be sent joins its endpoint's queue (oldest record first, see
:class:`_EndpointQueue`); one pump per endpoint reserves the endpoint's next rate-limiter turn on the head's behalf (``ApiSender.wait_turn``: the schedule is fixed at
reservation, so a late wake-up of the event loop never pushes it back), waits for it, then for a request slot,
and hands both over; calls whose turns are already due go in one burst. A call that finds its queue empty, both
slots free and its turn due takes all three itself and goes at once (the common case far from the limits: no
hand-over through the pump, which cost two event-loop steps per call).
So waiting costs O(log n) per call (no herd of callers polling the limiter), no turn is wasted while a slot is
free, no slot is held while waiting for a turn, and ``send`` never waits in the limiter. Each endpoint may also use at most
``endpoint_limits[endpoint]`` slots (the runtime sets it from the rate limit), so a slow endpoint's
latency cannot occupy every slot.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.delivery.auth import AuthGate
from connector.delivery.circuit import CircuitBoard
from connector.delivery.protocols import ApiSender
from connector.delivery.retry import CallAttempts, RetryPolicy, Verdict
from connector.errors import ConnectorError, Reason
from connector.observability.metrics import Metrics
from connector.types import Call, Clock, Sleep

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


class RecordTicket:
    """One multi-call record in delivery (:meth:`CallDeliverer.ticket`): counted as *half delivered* from the
    moment its first call is handed a turn until :meth:`CallDeliverer.release`."""

    __slots__ = ("counted",)

    def __init__(self) -> None:
        self.counted = False


_Entry = tuple[int, int, asyncio.Future[None], RecordTicket | None]  # (order, arrival, waiter, ticket)


class _Slots:
    """A counting semaphore whose free slot can also be taken without awaiting (:meth:`try_take`).

    The deliverer's fast path takes a call's slots in the same step as its turn, so it must know, without
    yielding, that both are there. Waiters are served first come, first served, and a released slot goes
    straight to the oldest waiter, so a free slot is never taken past one.
    """

    __slots__ = ("_waiters", "free")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def available(self) -> bool:
        """A slot is free and nobody waits for one (what :meth:`try_take` would take)."""
        return self.free > 0 and not self._waiters

    def try_take(self) -> bool:
        if self.available():
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed the slot in the same turn as the cancellation: pass it on
            raise

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                return
        self.free += 1


class _EndpointQueue:
    """Calls waiting for one endpoint's turn and its pump task.

    Calls that continue a record whose earlier call was delivered go first (a FIFO); then first calls of
    multi-call records (*opening*: they wait while too many records are half delivered) and all other calls,
    each kind a heap served **oldest record first** (``order``: when the engine took the record; arrival at
    the queue breaks ties). A key's records go one at a time, so a record that waited for its key's earlier
    one arrives late at its endpoint's queue; served by arrival it would wait the whole queue again, once
    per record of its key, and a customer with a few events would finish seconds after the rest (the
    shaped benchmark's tail). Calls in one endpoint's queue belong to different keys, so serving them out of
    arrival order never reorders a key.
    """

    __slots__ = ("opening", "plain", "resuming", "seq", "slots", "task", "wake")

    def __init__(self, slots: int) -> None:
        self.resuming: deque[_Entry] = deque()
        self.opening: list[_Entry] = []
        self.plain: list[_Entry] = []
        self.seq = 0
        self.task: asyncio.Task[None] | None = None
        self.slots = _Slots(slots)
        self.wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.resuming) + len(self.opening) + len(self.plain)

    def add(
        self, waiter: asyncio.Future[None], kind: str, ticket: RecordTicket | None, order: int | None
    ) -> None:
        """Queue ``waiter``; ``order`` None: served in arrival order among the others without one."""
        self.seq += 1
        entry = (self.seq if order is None else order, self.seq, waiter, ticket)
        if kind == "resume":
            self.resuming.append(entry)
        else:
            heapq.heappush(self.opening if kind == "open" else self.plain, entry)
        self.wake.set()

    def pop(self, *, open_ok: bool) -> tuple[asyncio.Future[None], RecordTicket | None] | None:
        """The next waiter to hand a turn to (dropping those cancelled meanwhile), or None: empty, or only
        opening calls are left and ``open_ok`` is false."""
        self._drop_cancelled()
        if self.resuming:
            _, _, waiter, ticket = self.resuming.popleft()
            return waiter, ticket
        opening = self.opening if open_ok and self.opening else None
        if opening is not None and (not self.plain or opening[0][:2] < self.plain[0][:2]):
            _, _, waiter, ticket = heapq.heappop(opening)
            return waiter, ticket
        if self.plain:
            _, _, waiter, ticket = heapq.heappop(self.plain)
            return waiter, ticket
        return None

    def ready(self, *, open_ok: bool) -> bool:
        """Whether :meth:`pop` would hand out a waiter now (without taking it)."""
        self._drop_cancelled()
        return bool(self.resuming or self.plain or (open_ok and self.opening))

    def _drop_cancelled(self) -> None:
        while self.resuming and self.resuming[0][2].done():
            self.resuming.popleft()  # cancelled while waiting
        for heap in (self.opening, self.plain):
            while heap and heap[0][2].done():
                heapq.heappop(heap)

    def cancel_all(self) -> None:
        for entries in (self.resuming, self.opening, self.plain):
            for _, _, waiter, _ in entries:
                waiter.cancel()
            entries.clear()


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
        max_half_delivered: int | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sender = sender
        self._policy = policy
        self._circuits = circuits
        self._auth = auth
        self._slots = _Slots(max_in_flight)
        self._max_in_flight = max_in_flight
        self._endpoint_limits = dict(endpoint_limits or {})
        self._queues: dict[str, _EndpointQueue] = {}
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0
        self._max_half = max_half_delivered if max_half_delivered is not None else max(1, max_in_flight // 2)
        self._half = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def half_delivered(self) -> int:
        """Multi-call records whose first call was handed a turn and that are not released yet."""
        return self._half

    def ticket(self) -> RecordTicket:
        """A ticket for one multi-call record: pass it to every :meth:`deliver` of its calls, then
        :meth:`release` it when the record is finished (delivered, dead-lettered or abandoned).

        At most ``max_half_delivered`` (default half of ``max_in_flight``) such records are between their first
        call and their end: a crash sends all of an unfinished record's calls again, so this bounds what a kill
        duplicates to about the in-flight window (half of it such first calls, the rest requests on the wire).
        At Attentive's ~100 ms a call, 64 of them allow ~300 two-call records a second. The first calls of further records wait at their endpoint (other calls pass them) until
        one is released; calls that continue a record never wait for this, so it cannot deadlock.
        """
        return RecordTicket()

    def release(self, ticket: RecordTicket) -> None:
        if not ticket.counted:
            return
        ticket.counted = False
        self._half -= 1
        if self._half == self._max_half - 1:  # room again: wake the pumps holding opening calls back
            for queue in self._queues.values():
                queue.wake.set()

    async def deliver(
        self,
        call: Call,
        attempts: CallAttempts | None = None,
        *,
        resumes: bool = False,
        ticket: RecordTicket | None = None,
        order: int | None = None,
    ) -> Any:
        """Send ``call`` until it succeeds (returns the response) or raises :class:`DeliveryFailed`.

        ``resumes``: an earlier call of the same record was delivered. Such a call goes ahead of the records'
        first calls at its endpoint, so few records are ever half delivered: a crash sends every call of an
        unfinished record again, and without this a record's first call could wait behind hundreds of others
        at a rate-limited endpoint's queue while its first call was already delivered (the chaos test saw
        ~200 duplicate first calls per replica kill). ``ticket``: the record's (see :meth:`ticket`). ``order``:
        the record's age (smaller = taken earlier); other calls at its endpoint are served oldest first.
        """
        state = attempts if attempts is not None else CallAttempts()
        endpoint = str(call.endpoint)
        while True:
            # Checked without a coroutine first: the key accepted and the circuit closed are the common case.
            if not self._auth.ok:
                await self._auth.wait_ok()
            probe = False if self._circuits.closed(endpoint) else await self._circuits.acquire(endpoint)
            try:
                response = await self._send(call, endpoint, resumes, ticket, order)
            except asyncio.CancelledError:
                self._circuits.neutral(endpoint, probe=probe)
                raise
            except _GateClosed:
                self._circuits.neutral(endpoint, probe=probe)
                continue
            except ConnectorError as exc:
                if exc.auth:
                    self._circuits.neutral(endpoint, probe=probe)
                    self._auth.trip(exc)
                    continue
                self._classify(endpoint, exc, probe)
                error: BaseException = exc
            except Exception as exc:
                # Not an error the client raises on purpose: a bug. Said loudly, with its traceback; it counts
                # as a strike, so the record is dead-lettered (reason internal_error) if it keeps happening.
                log.exception(
                    "BUG: sending %s to %s raised %s",
                    call.record_id,
                    endpoint,
                    type(exc).__name__,
                    extra={
                        "record_id": call.record_id,
                        "endpoint": endpoint,
                        "reason": Reason.INTERNAL_ERROR,
                    },
                )
                self._circuits.failure(endpoint, probe=probe)
                error = exc
            else:
                self._circuits.success(endpoint, probe=probe)
                return response
            await self._retry_or_give_up(call, endpoint, state, error)

    async def _retry_or_give_up(
        self, call: Call, endpoint: str, state: CallAttempts, exc: BaseException
    ) -> None:
        """Ask the policy about a failed send: wait out its delay, or raise :class:`DeliveryFailed`."""
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

    async def _send(
        self, call: Call, endpoint: str, resumes: bool, ticket: RecordTicket | None, order: int | None
    ) -> Any:
        # The in_flight_requests gauge is the client's (it counts requests on the wire, after its limiter).
        queue = self._queue(endpoint)
        if resumes:
            kind = "resume"
        elif ticket is not None and not ticket.counted:
            kind = "open"
        else:
            kind = "plain"  # a single call, or a first call retried (its record is counted already)
        if not self._take_now(queue, call.endpoint, kind, ticket):
            await self._turn(queue, call.endpoint, kind, ticket, order)
        # Holding a global and an endpoint slot, and the limiter's turn, taken for this call (here or by the
        # pump).
        try:
            if not self._auth.ok:
                # The key was refused while this call queued: don't send it just to get a 401. (The turn it
                # was given is spent: a turn is cheap, a 401 is not.)
                raise _GateClosed
            self._in_flight += 1
            try:
                return await self._sender.send(call, turn_taken=True)
            finally:
                self._in_flight -= 1
        finally:
            self._give_slots(queue)

    def _queue(self, endpoint: str) -> _EndpointQueue:
        queue = self._queues.get(endpoint)
        if queue is None:
            limit = min(self._max_in_flight, max(1, self._endpoint_limits.get(endpoint, self._max_in_flight)))
            queue = self._queues[endpoint] = _EndpointQueue(limit)
        return queue

    def _take_now(
        self, queue: _EndpointQueue, endpoint: Endpoint, kind: str, ticket: RecordTicket | None
    ) -> bool:
        """Take the call's turn and both slots at once, without queueing, when nobody waits ahead of it at its
        endpoint, both slots are free and the endpoint's turn is due now (True); else take nothing (False).

        The common case when the limits are far away: it saves the queue entry, the pump's wake-up and the
        hand-over (a future and two event-loop steps per call). Anyone already waiting keeps their place:
        a call joins the queue whenever the queue or a slot's waiters are not empty.
        """
        if len(queue) or not queue.slots.available() or not self._slots.available():
            return False
        if kind == "open" and self._half >= self._max_half:
            return False
        if not self._sender.try_turn(endpoint):
            return False
        queue.slots.try_take()  # both free (checked above, nothing ran since)
        self._slots.try_take()
        self._count_half_delivered(ticket)
        return True

    def _count_half_delivered(self, ticket: RecordTicket | None) -> None:
        """A multi-call record's first call was handed its turn: the record is half delivered until released."""
        if ticket is not None and not ticket.counted:
            ticket.counted = True
            self._half += 1

    def _give_slots(self, queue: _EndpointQueue) -> None:
        """Give back a call's endpoint slot and global slot."""
        queue.slots.give()
        self._slots.give()

    async def _turn(
        self,
        queue: _EndpointQueue,
        endpoint: Endpoint,
        kind: str,
        ticket: RecordTicket | None,
        order: int | None,
    ) -> None:
        """Wait in the endpoint's queue until the pump hands this call a limiter turn and both slots."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.add(waiter, kind, ticket, order)
        if queue.task is None:
            queue.task = asyncio.get_running_loop().create_task(
                self._pump(queue, endpoint), name=f"pump {endpoint}"
            )
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed the slots in the same turn as the cancellation: give them back.
                self._give_slots(queue)
            raise

    async def _pump(self, queue: _EndpointQueue, endpoint: Endpoint) -> None:
        """Let the endpoint's calls go in order, each with a limiter turn (reserved here, on its behalf, as
        soon as the previous one went: a late wake-up never pushes the schedule back), then an endpoint slot
        and a global slot. No slot is held while waiting for a turn."""
        try:
            while len(queue):
                if not queue.ready(open_ok=self._half < self._max_half):
                    # Only opening calls wait, and too many records are half delivered: until one is released
                    # or another call arrives. No turn is taken meanwhile.
                    queue.wake.clear()
                    await queue.wake.wait()
                    continue
                await self._sender.wait_turn(endpoint)
                await queue.slots.take()
                await self._slots.take()
                entry = queue.pop(open_ok=self._half < self._max_half)
                if entry is None:
                    self._give_slots(queue)
                    continue  # the turn goes unused: nobody (allowed) is left to take it
                waiter, ticket = entry
                self._count_half_delivered(ticket)
                waiter.set_result(None)
        finally:
            queue.task = None
            queue.cancel_all()  # callers still waiting (shutdown) fail with the pump

    async def aclose(self) -> None:
        """Stop the pumps (after the engine drained)."""
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _classify(self, endpoint: str, exc: ConnectorError, probe: bool) -> None:
        if exc.flow_control:
            self._circuits.neutral(endpoint, probe=probe)
        elif exc.permanent:
            # The endpoint answered and judged the request: it is up.
            self._circuits.success(endpoint, probe=probe)
        else:
            self._circuits.failure(endpoint, probe=probe)
