"""The delivery engine: consumed records in, exactly one outcome per record out, commits in between.

Everything here runs on the asyncio event loop; the poll thread (:mod:`connector.source.poller`) calls in
with ``call_soon_threadsafe``/``run_coroutine_threadsafe`` and receives commands through
:class:`SourceControl`. A record's way:

1. :meth:`Engine.accept` takes it (offset tracker, buffer budget). The poll thread never hands over more
   than the budget's room (records and bytes), so the bound holds. Each assigned partition is guaranteed a
   share of the buffer (:class:`~connector.delivery.backpressure.FairShares`): once the shared rest is
   spent, the partitions over their share are held back, so a slow topic is never starved by a busy one.
2. It is routed in partition order. A retriable routing error (Schema Registry down) holds the partition's
   routing and retries with backoff: the record is kept, nothing behind it overtakes it, and the partition
   is held back from fetching until routing moves again.
3. Skipped and stale records finish at once; the others join their key's lane (ordering key from the rule,
   else the Kafka key; keyless records run alone) and their calls are delivered in rule order by the
   :class:`~connector.delivery.deliverer.CallDeliverer` (retries, circuit, auth gate, in-flight bound).
4. Delivered → finished; undeliverable (routing error, permanent API error, retry budget spent) → the
   dead-letter write is acknowledged → finished.
5. Soon after a partition's watermark moves (at most every 50 ms), and every ``commit_interval_s`` for the
   finished-above offsets, the positions below which everything is finished are committed
   asynchronously — keeping small the window in which a crash resends delivered records (a repeated
   subscribe texts the person); revocation and shutdown commit synchronously through the poll thread. Each commit's
   metadata also lists the offsets already finished above the position (see
   :func:`connector.source.offsets.encode_done`), and a new owner — this process after a restart, or another
   member after a rebalance — skips those: records finished out of order behind a slow one are not sent
   twice.

The engine keeps no copy of the consumer's state: it tells the poll thread what it wants held back and why
(:class:`~connector.source.flow.Hold`: auth, shutdown, partitions over their share, partitions whose routing
waits) and the thread owns the pausing. Hold updates are coalesced to one per event-loop turn, and
finishing a record is O(1).

Shutdown and revocation start nothing new, let what is in flight finish within the grace period / revoke
timeout, and cancel the rest; unfinished records stay uncommitted and are delivered again by the next owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.asyncutil import wait_event
from connector.attentive.endpoints import Endpoint
from connector.config import DeliverySettings
from connector.delivery.backpressure import BufferBudget, FairShares
from connector.delivery.dead_letter import DeadLetterWriter, Failure
from connector.delivery.deliverer import CallDeliverer, DeliveryFailed, RecordTicket
from connector.delivery.lanes import LaneKey, Lanes
from connector.delivery.protocols import Backoff, RecordRouter
from connector.delivery.retry import CallAttempts
from connector.errors import ConnectorError, DecodeError
from connector.observability.health import HealthState
from connector.observability.metrics import Children, Metrics
from connector.source.flow import Hold, HoldReason
from connector.source.kafka import Inbound
from connector.source.offsets import TP, Commit, OffsetTracker, PartitionOffsets
from connector.types import Clock, OutcomeKind, RouteResult, SourceRecord

log = logging.getLogger(__name__)

# Outcome counted for records a replay filtered out (not a metric outcome: they were never processed).
FILTERED = "filtered"
# Shortest gap between two early (subscribe-triggered) commits.
_EARLY_COMMIT_GAP_S = 0.05
# Records routed per event-loop turn (see Engine._route_backlog): ~5 ms of work at most.
_ROUTE_PER_TURN = 64


class SourceControl(Protocol):
    """What the engine asks of the poll thread (thread-safe, non-blocking)."""

    def hold(self, hold: Hold) -> None: ...
    def commit(self, offsets: dict[TP, Commit]) -> None: ...


@dataclass(eq=False, slots=True)
class _Item:
    """One record in the engine."""

    inbound: Inbound
    part: _Partition
    record: SourceRecord
    route: RouteResult | None = None
    released: bool = False
    ticket: RecordTicket | None = None
    """A multi-call record's ticket (see :meth:`CallDeliverer.ticket`) while it is being delivered."""
    order: int = 0
    """When it was taken (a counter over all partitions): its calls wait at their endpoints oldest first."""


@dataclass(eq=False, slots=True)
class _Partition:
    tp: TP
    offsets: PartitionOffsets
    backlog: deque[_Item] = field(default_factory=deque)
    """Taken, not yet routed (routing is in partition order)."""
    route_failures: int = 0
    blocked: bool = False
    retry_handle: asyncio.TimerHandle | None = None
    queued_for_routing: bool = False
    handed_off: bool = False
    """Revoked or lost to another member, which finishes its unfinished records (and counts them)."""
    sent: tuple[int, int] | None = None
    """(position, finished-above count) of the last commit asked for: commit again only when it changes —
    or when the group does not hold that position ``commit_interval_s`` after it was asked for (the commit
    failed, or an older one was written after it: :meth:`PartitionOffsets.confirm`)."""
    sent_at: float = 0.0

    def __str__(self) -> str:
        return str(self.tp)


class Engine:
    """Routes, orders, delivers, dead-letters and finishes records; schedules commits; applies backpressure.

    :param router: ``route(record) -> RouteResult``.
    :param deliverer: sends calls with retries (owns the auth gate, circuits and in-flight bound).
    :param dead_letters: writes undeliverable records to their DLQ and waits for the acknowledgement.
    :param dlq_topic: source topic → its dead-letter topic.
    :param route_backoff: delays between routing retries while the Schema Registry is unavailable.
    :param clock: wall clock, compared with record timestamps (delivery lag) and written to DLQ headers.
    :param monotonic: interval clock (when an unconfirmed commit is due again); the event loop's in tests.
    """

    def __init__(
        self,
        *,
        settings: DeliverySettings,
        router: RecordRouter,
        deliverer: CallDeliverer,
        dead_letters: DeadLetterWriter,
        dlq_topic: Callable[[str], str],
        metrics: Metrics,
        route_backoff: Backoff,
        health: HealthState | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self._s = settings
        self._router = router
        self._deliverer = deliverer
        self._dead_letters = dead_letters
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        # The per-record metrics' children, looked up once (see Children).
        self._consumed = Children(metrics.records_consumed)
        self._processed = Children(metrics.records_processed)
        self._lag = Children(metrics.delivery_lag)
        self._route_backoff = route_backoff
        self._health = health
        self._clock = clock
        self._monotonic = monotonic
        self._source: SourceControl | None = None
        self._tracker = OffsetTracker()
        self._parts: dict[TP, _Partition] = {}
        self._lanes: Lanes[_Item] = Lanes(self._process)
        self._budget = BufferBudget(settings.max_buffered_records, settings.max_buffered_bytes)
        self._shares: FairShares[TP] = FairShares(settings.max_buffered_records, settings.max_buffered_bytes)
        self._routing_held: set[TP] = set()
        self._to_route: deque[_Partition] = deque()
        self._routing_scheduled = False
        self._routing_dirty = False
        self._flush_scheduled = False
        self._auth_ok = True
        self._counts: Counter[str] = Counter()
        self._taken = 0  # records taken so far: each item's ``order``
        self._empty = asyncio.Event()
        self._empty.set()
        self._commit_wakeup = asyncio.Event()
        self._commit_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.exhausted_event = asyncio.Event()
        """Set when a bounded source (replay) has handed over everything it will."""

    # -- wiring -------------------------------------------------------------------------------------------

    def bind(self, source: SourceControl) -> None:
        """Connect the poll thread's command side; holds decided before (e.g. auth) are passed on."""
        self._source = source
        if not self._auth_ok:
            source.hold(Hold.everything(HoldReason.AUTH))
        if self._stopping:
            source.hold(Hold.everything(HoldReason.SHUTDOWN))
        if self._shares.throttled():
            source.hold(Hold(HoldReason.OVER_SHARE, self._shares.throttled()))
        if self._routing_held:
            source.hold(Hold(HoldReason.ROUTING_HELD, frozenset(self._routing_held)))

    @property
    def buffer(self) -> BufferBudget:
        """The buffer's counters; the poll thread reads its room before every poll."""
        return self._budget

    def start(self) -> None:
        """Start the periodic commit task (in the running loop)."""
        if self._commit_task is None:
            self._commit_task = asyncio.get_running_loop().create_task(self._commit_loop(), name="commits")

    def auth_changed(self, ok: bool) -> None:
        """The auth gate opened or closed: pause or resume consumption and report readiness."""
        if self._health is not None:
            self._health.auth_ok = ok
        if ok != self._auth_ok:
            self._auth_ok = ok
            self._send(Hold.everything(HoldReason.AUTH, on=not ok))

    # -- from the poll thread (on the loop) ---------------------------------------------------------------

    def assigned(self, tps: list[TP], done: dict[TP, set[int]] | None = None) -> None:
        """New partitions; ``done`` holds offsets a previous owner finished above its commit (skip them)."""
        for tp in tps:
            self._parts[tp] = _Partition(tp, self._tracker.assign(tp, (done or {}).get(tp, ())))
            self._shares.assign(tp)
        self._schedule_flush()

    def accept(self, batch: list[Inbound]) -> None:
        """Take a batch of consumed records (in offset order per partition)."""
        touched: dict[TP, _Partition] = {}
        for inb in batch:
            part = self._parts.get(inb.tp)
            if part is None or part.offsets.revoked:
                continue  # its partition is gone: not taken, so never committed; the new owner reads it
            if not part.offsets.take(inb.offset):
                log.warning(
                    "offset %s/%d seen again (seek or reset): not processed twice", inb.tp, inb.offset
                )
                continue
            if inb.offset in part.offsets.already_done:
                # Finished before a restart or rebalance (recorded in the commit metadata): not again.
                part.offsets.already_done.discard(inb.offset)
                part.offsets.finish(inb.offset)
                self._counts["already_done"] += 1
                continue
            self._counts["consumed"] += 1
            self._consumed(inb.tp.topic).inc()
            self._empty.clear()
            self._shares.add(inb.tp, inb.size)
            self._budget.add(inb.size)
            if inb.record is None:
                item = _Item(inb, part, _placeholder(inb))
                self._finish(item, FILTERED if inb.skip else OutcomeKind.SKIPPED.value, rule=None)
                continue
            self._taken += 1
            part.backlog.append(_Item(inb, part, inb.record, order=self._taken))
            touched[inb.tp] = part
        for part in touched.values():
            self._route_backlog(part)
        self._schedule_flush()

    async def release(self, tps: list[TP]) -> dict[TP, Commit]:
        """Partitions are being revoked: start nothing new for them, let in-flight records finish within
        ``revoke_timeout_s`` (cancel what is left), and return the positions to commit."""
        parts = [self._parts[tp] for tp in tps if tp in self._parts]
        wanted = {p.tp for p in parts}
        for part in parts:
            self._drop_backlog(part)
        for item in self._lanes.drop_queued(parts):
            self._release(item)
        # A multi-call record whose first call was never handed a turn has sent nothing: let it go at once
        # (the new owner delivers it) rather than wait for a turn it may not get soon, half-delivered records
        # being capped. Nothing of it was delivered, so this costs no duplicate.
        await self._lanes.cancel_where(
            parts, lambda item: item.ticket is not None and not item.ticket.counted
        )
        idle = await self._lanes.wait_scopes_idle(parts, self._s.revoke_timeout_s)
        if not idle:
            running = sum(len(self._lanes.running(part)) for part in parts)
            log.warning(
                "revoke: %d record(s) still in flight after %.1fs; abandoning them (the new owner redelivers)",
                running,
                self._s.revoke_timeout_s,
            )
            await self._lanes.cancel(parts)
        positions = self._tracker.committable(list(wanted))
        for part in parts:
            if not self._stopping:  # at shutdown they stay ours to finish after the restart
                self._hand_off(part)
            self._forget(part)
        return positions

    def lost(self, tps: list[TP]) -> None:
        """Partitions were lost (session timeout): drop them now, commit nothing, cancel their work."""
        parts = [self._parts[tp] for tp in tps if tp in self._parts]
        for part in parts:
            self._drop_backlog(part)
            self._hand_off(part)
            self._forget(part)
        for item in self._lanes.drop_queued(parts):
            self._release(item)
        self._spawn(self._lanes.cancel(parts))

    def committed(self, positions: dict[TP, int]) -> None:
        """The broker wrote these commits (answers come in write order: the last one is what the group holds)."""
        for tp, pos in positions.items():
            part = self._parts.get(tp)
            if part is not None:
                if pos < part.offsets.confirmed:
                    log.debug(
                        "%s: commit of %d written after the one of %d (a deferred or retried commit): "
                        "committing the current position again",
                        tp,
                        pos,
                        part.offsets.confirmed,
                    )
                part.offsets.confirm(pos)

    def exhausted(self) -> None:
        self.exhausted_event.set()

    # -- routing ------------------------------------------------------------------------------------------

    def _route_backlog(self, part: _Partition) -> None:
        """Queue ``part`` for routing. Routing runs in turns of at most ``_ROUTE_PER_TURN`` records, each its
        own event-loop callback, so a refill of thousands of records never blocks the loop for long: answers,
        pumps and commits run in between (a whole batch routed at once stalled every endpoint ~0.3 s)."""
        if part.queued_for_routing:
            return
        part.queued_for_routing = True
        self._to_route.append(part)
        if not self._routing_scheduled:
            self._routing_scheduled = True
            asyncio.get_running_loop().call_soon(self._route_turn)

    def _route_turn(self) -> None:
        self._routing_scheduled = False
        budget = _ROUTE_PER_TURN
        while budget > 0 and self._to_route:
            part = self._to_route.popleft()
            part.queued_for_routing = False
            budget -= self._route_some(part, budget)
            if part.backlog and not part.blocked and not part.offsets.revoked:
                self._route_backlog(part)  # more to do: after the others (round robin)
        if self._to_route and not self._routing_scheduled:
            self._routing_scheduled = True
            asyncio.get_running_loop().call_soon(self._route_turn)

    def _route_some(self, part: _Partition, budget: int) -> int:
        """Route up to ``budget`` records of ``part`` in partition order; returns how many."""
        routed = 0
        while routed < budget and part.backlog and not part.blocked and not part.offsets.revoked:
            routed += 1
            item = part.backlog[0]
            if self._needs_registry(item.record):
                # The first record of a new schema id needs an HTTP call to the registry: make it on a
                # worker thread so the event loop (deliveries, health endpoints) never waits on it.
                part.blocked = True
                self._spawn(self._fetch_schema(part, item.record))
                return routed
            try:
                result = self._router.route(item.record)
            except ConnectorError as exc:
                if exc.retriable:
                    self._hold_routing(part, exc)
                    return routed
                log.warning(
                    "routing %s raised %s (%s); dead-lettering it",
                    item.record.record_id,
                    type(exc).__name__,
                    exc.reason,
                    extra={"record_id": item.record.record_id},
                )
                result = RouteResult(error=exc, rule=exc.rule)
            except Exception as exc:  # noqa: BLE001 - a bug: _log_bug logs its traceback, then dead-lettered
                _log_bug("routing", item.record, exc)
                result = RouteResult(error=exc)
            if part.route_failures:
                part.route_failures = 0
                self._set_routing_held(part.tp, False)
            part.backlog.popleft()
            item.route = result
            self._dispatch(item, result)
        return routed

    def _hold_routing(self, part: _Partition, exc: ConnectorError) -> None:
        part.blocked = True
        part.route_failures += 1
        self._set_routing_held(part.tp, True)
        delay = self._route_backoff.delay(part.route_failures)
        log.warning(
            "cannot route %s yet (%s: %s); holding partition %s, retrying in %.1fs",
            part.backlog[0].record.record_id,
            type(exc).__name__,
            exc.reason,
            part.tp,
            delay,
        )
        part.retry_handle = asyncio.get_running_loop().call_later(delay, self._unblock, part)

    def _needs_registry(self, record: SourceRecord) -> bool:
        return self._router.needs_registry(record)

    def _set_routing_held(self, tp: TP, held: bool) -> None:
        if held == (tp in self._routing_held):
            return
        if held:
            self._routing_held.add(tp)
        else:
            self._routing_held.discard(tp)
        self._routing_dirty = True
        self._schedule_flush()

    async def _fetch_schema(self, part: _Partition, record: SourceRecord) -> None:
        try:
            # Routing once off the loop warms the decoder's schema cache; the result is routed again below.
            await asyncio.to_thread(self._router.route, record)
        except ConnectorError as exc:
            if exc.retriable:
                self._hold_routing(part, exc)
                return
        except Exception:  # noqa: BLE001, S110 - routed again on the loop below, where a bug is logged
            pass
        self._unblock(part)

    def _unblock(self, part: _Partition) -> None:
        part.blocked = False
        part.retry_handle = None
        self._route_backlog(part)

    def _dispatch(self, item: _Item, result: RouteResult) -> None:
        topic = item.record.topic
        if isinstance(result.error, DecodeError):
            self._metrics.decode_errors.labels(topic, result.error.reason).inc()
        if result.error is None and not result.calls:
            outcome = OutcomeKind.STALE if result.skipped == "stale" else OutcomeKind.SKIPPED
            self._finish(item, outcome.value, rule=result.rule)
            return
        self._lanes.submit(self._lane_key(item, result), item)

    @staticmethod
    def _lane_key(item: _Item, result: RouteResult) -> LaneKey:
        key: str | bytes | int | None = result.ordering_key
        if key is None:
            key = item.record.key
        if key is None:
            key = item.inbound.offset  # keyless: a lane of its own
        return (item.part, key)

    # -- delivery (one lane task per key) ------------------------------------------------------------------

    async def _process(self, item: _Item) -> None:
        try:
            await self._deliver_or_dead_letter(item)
        except asyncio.CancelledError:
            # Abandoned (revoked, lost, shutdown): unfinished, so never committed; free its buffer space.
            self._release(item)
            raise

    async def _deliver_or_dead_letter(self, item: _Item) -> None:
        result = item.route
        assert result is not None
        rule = result.rule
        try:
            if result.error is not None:
                now = self._clock()
                await self._dead_letter(
                    item, Failure(result.error, rule or _rule_of(result.error), 0, now, now)
                )
                return
            many = len(result.calls) > 1
            # A multi-call record counts as half delivered from its first call to its end (the deliverer
            # bounds how many are: what a crash would send twice).
            ticket = item.ticket = self._deliverer.ticket() if many else None
            try:
                await self._deliver_calls(item, ticket)
            finally:
                if ticket is not None:
                    self._deliverer.release(ticket)
        except Exception as exc:  # noqa: BLE001 - a bug: _log_bug logs its traceback, then dead-lettered
            _log_bug("delivering", item.record, exc)
            now = self._clock()
            await self._dead_letter(item, Failure(exc, rule, 0, now, now))

    async def _deliver_calls(self, item: _Item, ticket: RecordTicket | None) -> None:
        """Every call of the record in rule order, each after the one before succeeded; then finish it — or
        dead-letter it when a call can never be delivered (the ticket is released first: no call follows)."""
        result = item.route
        assert result is not None
        rule = result.rule
        subscribed = False
        many = len(result.calls) > 1
        for index, call in enumerate(result.calls):
            attempts = CallAttempts()
            try:
                await self._deliverer.deliver(
                    call, attempts, resumes=index > 0, ticket=ticket, order=item.order
                )
            except DeliveryFailed as failed:
                if ticket is not None:
                    self._deliverer.release(ticket)
                now = self._clock()
                await self._dead_letter(
                    item,
                    Failure(
                        failed.error,
                        call.rule or rule,
                        attempts.attempts,
                        attempts.first_failure or now,
                        attempts.last_failure or now,
                        call_id=call.record_id if many else None,
                    ),
                )
                return
            subscribed = subscribed or call.endpoint == Endpoint.SUBSCRIBE
        ts = item.record.timestamp_ms
        if ts is not None:
            self._lag(item.record.topic).observe(max(0.0, self._clock() - ts / 1000))
        self._finish(item, OutcomeKind.DELIVERED.value, rule=rule)
        if subscribed:
            # Subscribing twice texts the person again: commit past it as soon as the watermark allows.
            self._commit_wakeup.set()

    async def _dead_letter(self, item: _Item, failure: Failure) -> None:
        await self._dead_letters.write(item.record, self._dlq_topic(item.record.topic), failure)
        self._finish(item, OutcomeKind.DEAD_LETTERED.value, rule=failure.rule)

    # -- finishing ----------------------------------------------------------------------------------------

    def _hand_off(self, part: _Partition) -> None:
        self._counts["handed_off"] += part.offsets.unfinished
        part.handed_off = True

    def _finish(self, item: _Item, outcome: str, *, rule: str | None) -> None:
        if item.part.handed_off:
            # Finished here after its partition went to another member (a lost partition's call that was
            # already on the wire): counted as handed off, so not again.
            self._release(item)
            return
        self._counts[outcome] += 1
        if outcome != FILTERED:
            self._processed(item.record.topic, rule or "none", outcome).inc()
        # A revoked partition's tracker is no longer committed from: finishing there changes nothing.
        offsets = item.part.offsets
        head = offsets.committable
        offsets.finish(item.inbound.offset)
        if offsets.committable != head:
            # The watermark moved: commit it soon (at most every 50 ms), not only every commit_interval_s,
            # so a crash or a broker that keeps no commit metadata redelivers as little as possible.
            self._commit_wakeup.set()
        self._release(item)

    def _release(self, item: _Item) -> None:
        """The item no longer holds buffer space (finished, or dropped on revoke)."""
        if item.released:
            return
        item.released = True
        self._shares.remove(item.inbound.tp, item.inbound.size)
        self._budget.remove(item.inbound.size)
        if self._budget.records == 0:
            self._empty.set()
        self._schedule_flush()

    def _drop_backlog(self, part: _Partition) -> None:
        part.offsets.revoked = True
        if part.retry_handle is not None:
            part.retry_handle.cancel()
            part.retry_handle = None
        while part.backlog:
            self._release(part.backlog.popleft())

    def _forget(self, part: _Partition) -> None:
        self._tracker.drop(part.tp)
        if self._parts.get(part.tp) is part:
            del self._parts[part.tp]
            self._shares.drop(part.tp)
            self._set_routing_held(part.tp, False)
            self._schedule_flush()

    # -- commits ------------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await wait_event(self._commit_wakeup, self._s.commit_interval_s)
            self._commit_wakeup.clear()
            self.commit_async()
            await asyncio.sleep(_EARLY_COMMIT_GAP_S)

    def commit_async(self) -> dict[TP, Commit]:
        """Ask the poll thread to commit every partition whose position or finished-above set changed.

        The metadata carries the offsets finished above the position, so a restart or the next owner skips
        them instead of delivering them twice.
        """
        todo: dict[TP, Commit] = {}
        now = self._monotonic()
        for tp, part in self._parts.items():
            offsets = part.offsets
            pos = offsets.committable
            if pos is None:
                continue
            # Decide from (position, finished-above count) first: the metadata walks and compresses every
            # offset finished above the position, so it is built only for a commit that is sent.
            key = (pos, offsets.finished_above_count)
            if part.sent is None and key == (offsets.confirmed, 0):
                continue
            if key == part.sent and (
                offsets.confirmed >= pos or now - part.sent_at < self._s.commit_interval_s
            ):
                # Asked for already: confirmed, or not yet overdue. An unconfirmed one (the commit failed:
                # the broker was down, the coordinator moving; or a retried older commit was written after
                # it) is sent again after commit_interval_s.
                continue
            part.sent = key
            part.sent_at = now
            todo[tp] = Commit(pos, offsets.metadata())
        if todo and self._source is not None:
            self._source.commit(todo)
        return todo

    def positions(self) -> dict[TP, Commit]:
        """Committable position (with metadata) of every assigned partition, for the final synchronous commit."""
        return self._tracker.committable()

    # -- shutdown -----------------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Shutdown: stop consuming, let the records already in flight finish within ``timeout_s`` (cancel
        what is left), and start nothing new. Records not finished stay uncommitted and are delivered again
        after a restart — never lost. Returns True when everything in flight finished.
        """
        self._stopping = True
        self._send(Hold.everything(HoldReason.SHUTDOWN))
        parts = list(self._parts.values())
        for part in parts:
            self._drop_backlog(part)
        for item in self._lanes.drop_queued(parts):
            self._release(item)
        drained = await self._lanes.wait_scopes_idle(parts, timeout_s)
        if not drained:
            running = len(self._lanes.running())
            log.warning(
                "shutdown: %d record(s) still in flight after %.1fs; abandoning them (they stay uncommitted and "
                "will be delivered again)",
                running,
                timeout_s,
            )
        await self._lanes.cancel()
        return drained

    async def close(self) -> None:
        """Stop the background tasks (after :meth:`drain` and the final commit)."""
        tasks = [t for t in (self._commit_task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._commit_task = None

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no record is held (for bounded sources and tests)."""
        return await wait_event(self._empty, timeout_s)

    # -- reporting ----------------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Record counts: consumed, delivered, skipped, stale, dead_lettered, filtered, pending.

        ``pending`` counts records taken and not finished (in flight, queued, or left unfinished by a
        shutdown — those are delivered again after a restart); records of partitions revoked or lost to
        another member are not counted, as that member finishes them."""
        outcomes = ("delivered", "skipped", "stale", "dead_lettered", FILTERED)
        out = {k: self._counts.get(k, 0) for k in ("consumed", *outcomes)}
        # Taken and not finished here, minus what went to another member with a revoked/lost partition.
        finished = sum(out[k] for k in outcomes)
        out["pending"] = out["consumed"] - finished - self._counts.get("handed_off", 0)
        return out

    # -- helpers ------------------------------------------------------------------------------------------

    def _send(self, hold: Hold) -> None:
        if self._source is not None:
            self._source.hold(hold)

    def _schedule_flush(self) -> None:
        """Publish the buffer gauge and changed holds once per event-loop turn, however many records moved."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._metrics.buffered_records.set(self._budget.records)
        throttled = self._shares.take_changes()
        if throttled is not None:
            self._send(Hold(HoldReason.OVER_SHARE, throttled))
        if self._routing_dirty:
            self._routing_dirty = False
            self._send(Hold(HoldReason.ROUTING_HELD, frozenset(self._routing_held)))

    @property
    def throttled(self) -> frozenset[TP]:
        """Partitions held back for holding more than their share of the buffer."""
        return self._shares.throttled()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _placeholder(inb: Inbound) -> SourceRecord:
    """A stand-in record for an item with nothing to process (it only needs a topic for the counters)."""
    return SourceRecord(
        topic=inb.tp.topic, partition=inb.tp.partition, offset=inb.offset, key=None, value=None
    )


def _rule_of(error: BaseException) -> str | None:
    """The rule a routing error names, if any (``None`` for anything outside the tree)."""
    return error.rule if isinstance(error, ConnectorError) else None


def _log_bug(stage: str, record: SourceRecord, exc: BaseException) -> None:
    """Say loudly (ERROR, with the traceback) that ``stage`` raised something outside the error tree."""
    log.exception(
        "BUG: %s %s raised %s; dead-lettering it (reason internal_error)",
        stage,
        record.record_id,
        type(exc).__name__,
        extra={"record_id": record.record_id},
    )
