"""The poll thread: the only thread that touches the Kafka consumer.

It polls in short slices (``timeout_s``, at most ``batch_size`` messages) whatever the engine is doing, so
the member never exceeds ``max.poll.interval.ms`` and rebalance callbacks are served promptly — even while
every partition is paused for backpressure or an auth failure. Consumed messages go to the engine on the
event loop with ``loop.call_soon_threadsafe`` (FIFO, so an assignment always reaches the engine before its
records, and records before the revocation of their partition).

This thread is the only owner of the consumer's state: assignment, what librdkafka has paused, positions.
The engine never mirrors it; it only states what it wants with typed commands
(:class:`~connector.source.flow.Hold` per reason — auth, shutdown, partitions over their buffer share,
partitions whose routing waits for the registry — plus :meth:`Poller.commit` and :meth:`Poller.stop`), which
the thread applies between polls: the partitions to pause are the union of the current holds.

**The buffer bound is enforced here.** Before each poll the thread reads how much room the engine has left
(records and bytes, minus what is handed over but not yet taken) and fetches at most that many. With no room
it first only *waits* (``consume()`` is not called) until the engine has drained to ``resume_ratio`` (90 %)
of its bounds: in a backlog the buffer fills and drains about once a second, and pausing every partition each
time cost a whole second of it — a pause drops librdkafka's prefetched messages, and a resumed partition is
fetched again only when the broker thread next looks, up to ~1 s later (the bench saw the buffer run empty
for 0.2-0.7 s after every resume, the connector idle 40 % of a drain). Waiting keeps the prefetch (bounded by
``queued.min.messages``/``queued.max.messages.kbytes``, outside the engine's bound). Rebalance callbacks are
only served inside ``consume()``, so a buffer full for longer than ``full_wait_s`` (Attentive down, a slow
endpoint owning the buffer) holds every partition back (``buffer_full``) and polling resumes. librdkafka can
return a message of a partition it was just told to pause (a pause issued right after an assignment may not
take; messages already fetched for a resumed partition arrive late): such a message — of a held partition,
or beyond the room left — is not handed over but *rewound* (``seek`` back to its offset, and the partition
paused again), so it is fetched again later. Nothing is dropped, and the engine never holds more than its
bounds.

Rebalance (cooperative-sticky; the callbacks run on this thread, inside ``consume``):

* **assigned**: tell the engine, ``incremental_assign``, and pause the new partitions if consumption is
  paused.
* **revoked**: ask the engine to release the partitions — it starts nothing new for them and waits up to
  ``revoke_timeout_s`` for their in-flight records — then commit the positions it returns *synchronously*,
  then ``incremental_unassign``. The thread blocks on the event loop here, never the other way round, so
  there is no deadlock (the loop never waits on this thread while it waits on the loop).
* **lost**: the partitions already belong to someone else: the engine drops them; nothing is committed.

A second mode (``fixed_topic``) assigns every partition of one topic from the group's committed offsets and
reports when it has read up to the end offsets seen at start: the DLQ replay reads that way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connector.observability.health import HealthState
from connector.observability.logs import RateLimitedLog
from connector.observability.metrics import Metrics
from connector.source.flow import BufferRoom, Command, CommitOffsets, Hold, HoldReason, Holds, Stop
from connector.source.kafka import Inbound, inbound
from connector.source.offsets import TP, Commit, decode_done
from connector.source.protocols import ConsumerFactory, KafkaConsumer, KafkaMessage

log = logging.getLogger(__name__)
# librdkafka reports every reconnect attempt (~20/s per client while a broker is down): one line per interval.
_errors = RateLimitedLog(log)


class EngineLink(Protocol):
    """What the poll thread calls on the engine (always on the event loop thread)."""

    def assigned(self, tps: list[TP], done: dict[TP, set[int]] | None = None) -> None: ...
    def accept(self, batch: list[Inbound]) -> None: ...
    def release(self, tps: list[TP]) -> Coroutine[Any, Any, dict[TP, Commit]]: ...
    def lost(self, tps: list[TP]) -> None: ...
    def committed(self, positions: dict[TP, int]) -> None: ...
    def exhausted(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PollSettings:
    batch_size: int = 500
    timeout_s: float = 0.1
    revoke_timeout_s: float = 15.0
    """How long the engine may take to release revoked partitions (the thread waits a little longer)."""
    revoke_margin_s: float = 10.0
    """Extra wait for the engine's answer beyond ``revoke_timeout_s`` before giving up (and not committing)."""
    metadata_timeout_s: float = 10.0
    lag_refresh_s: float = 5.0
    """How often the lag of paused partitions is read from the broker (librdkafka's statistics interval)."""
    resume_ratio: float = 0.9
    """After the buffer filled up, consume again once the engine holds at most this share of its bounds.

    Not half: the buffer's shares (:class:`~connector.delivery.backpressure.FairShares`) already hold back the
    partitions that filled it, and slow ones (signups at subscribe's 10/s, privacy at 5/s) may own most of it
    for minutes; waiting for it to drain to half ran the fast partitions dry (the bench saw every eCommerce
    endpoint stall for 2-3 s at a time). Room for a tenth of the bound is enough to consume again."""
    full_wait_s: float = 1.0
    """How long a full buffer only stops consumption (the prefetch is kept, callbacks wait) before every
    partition is held back and polling resumes (see the module docstring)."""


class Poller:
    """Owns the consumer on a dedicated thread; see the module docstring.

    :param consumer_factory: builds the consumer from a librdkafka config dict (``confluent_kafka.Consumer``).
    :param consumer_config: that dict; the poller adds its callbacks (``on_commit``, ``stats_cb``, ``error_cb``).
    :param topics: subscribe to these (group mode), or
    :param fixed_topic: assign all partitions of this topic and stop at its end offsets (replay mode).
    :param transform: message → :class:`Inbound` (runs on this thread).
    :param room: the engine's buffer room (read from this thread). Each poll hands over at most that many
        records and bytes minus those handed over but not yet taken (see the module docstring).
    """

    def __init__(
        self,
        consumer_factory: ConsumerFactory,
        consumer_config: dict[str, Any],
        *,
        link: EngineLink,
        loop: asyncio.AbstractEventLoop,
        topics: list[str] | None = None,
        fixed_topic: str | None = None,
        settings: PollSettings = PollSettings(),
        metrics: Metrics,
        health: HealthState | None = None,
        transform: Callable[[KafkaMessage], Inbound] = inbound,
        room: BufferRoom | None = None,
    ) -> None:
        if (topics is None) == (fixed_topic is None):
            raise ValueError("give exactly one of topics or fixed_topic")
        self._factory = consumer_factory
        self._config = dict(consumer_config)
        self._link = link
        self._loop = loop
        self._topics = topics
        self._fixed_topic = fixed_topic
        self._s = settings
        self._metrics = metrics
        self._health = health
        self._transform = transform
        self._room_source = room
        # Records and bytes handed to the loop (written by this thread) and taken by the engine (written by
        # the loop): the difference is in transit and counts against the room.
        self._handed = self._handed_bytes = 0
        self._landed = self._landed_bytes = 0
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._wakeup = threading.Event()  # ends a wait for room: room freed or a command queued
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="kafka-poll", daemon=True)
        # State below is only touched by the poll thread.
        self._consumer: KafkaConsumer | None = None
        self._assignment: set[TP] = set()
        self._holds = Holds()
        self._paused: set[TP] = set()
        """What librdkafka was told to pause (this thread's own record of its calls, not a mirror)."""
        self.rewound = 0
        """Messages not handed over and seeked back (held partition or no room): fetched again later."""
        self._stopping = False
        self._flowing = False  # the last poll returned messages (see _consume)
        self._full_since: float | None = None  # when the buffer last filled up (None: not full since)
        self._final_offsets: dict[TP, Commit] = {}
        # Commit metadata read back once, to find brokers that drop it (see _check_metadata_kept).
        self._lag_base: dict[TP, int] = {}  # committed (or start) offset per partition, from the statistics
        self._next_lag_refresh = 0.0
        self._metadata_sent: tuple[TP, Commit] | None = None
        self._metadata_probe: tuple[TP, Commit] | None = None
        self._metadata_checked = False
        self.metadata_kept: bool | None = None
        """Whether the broker keeps commit metadata (None until a commit with metadata was read back)."""
        self._last_sync_commit: dict[TP, Commit] = {}
        # Replay mode.
        self.plan: dict[TP, tuple[int, int]] = {}
        """Replay mode: ``{partition: (start, end)}`` offsets, set before the engine hears of the assignment."""
        self._remaining: set[TP] = set()
        self._exhausted_sent = False

    # -- commands (any thread) ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def hold(self, hold: Hold) -> None:
        """Hold back partitions for a reason (replaces that reason's previous hold); applied before the next
        poll."""
        self._commands.put(hold)
        self._wakeup.set()

    def commit(self, offsets: dict[TP, Commit]) -> None:
        """Commit these positions asynchronously (results come back through ``link.committed``)."""
        if offsets:
            self._commands.put(CommitOffsets(dict(offsets)))
            self._wakeup.set()

    def stop(self, final_offsets: dict[TP, Commit] | None = None) -> None:
        """Commit ``final_offsets`` synchronously, close the consumer (revoking what it owns) and end."""
        self._commands.put(Stop(dict(final_offsets or {})))
        self._wakeup.set()

    async def wait(self) -> None:
        """Until the thread has ended; re-raises what killed it."""
        await asyncio.wrap_future(self._done)

    @property
    def done(self) -> bool:
        return self._done.done()

    # -- the thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._poll_until_stopped()
        except BaseException as exc:
            log.exception("the Kafka poll thread failed")
            self._done.set_exception(exc)
        else:
            self._done.set_result(None)

    def _poll_until_stopped(self) -> None:
        conf = dict(self._config)
        conf["on_commit"] = self._on_commit
        conf["error_cb"] = self._on_error
        conf["stats_cb"] = self._on_stats
        consumer = self._factory(conf)
        self._consumer = consumer
        try:
            if self._topics is not None:
                consumer.subscribe(
                    self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
                )
                self._set_health(assignment_state="waiting")
            else:
                self._assign_fixed(consumer)
            while not self._stopping:
                self._apply_commands(consumer)
                if self._stopping:
                    break
                room = self._room(consumer)
                if self._full_since is not None and not self._holds.active(HoldReason.BUFFER_FULL):
                    self._wait_for_room()  # full for now: keep librdkafka's prefetch
                    continue
                # consume() also serves the callbacks, so it is called even with no room once every partition
                # is held back (anything that still arrives is rewound).
                messages = self._consume(consumer, room)
                self._metrics.last_poll_timestamp.set(time.time())
                if self._health is not None:
                    self._health.mark_poll()
                if messages:
                    self._hand_over(consumer, messages, room)
                if self._metadata_probe is not None:
                    self._check_metadata_kept(consumer)
                if self._paused:
                    self._refresh_paused_lag(consumer)
                if self._fixed_topic is not None:
                    self._check_exhausted(consumer)
            self._commit_sync(consumer, self._final_offsets, why="shutdown")
        finally:
            # close() revokes what is still assigned: on_revoke releases and commits it (the engine has
            # drained by now, so this only confirms the final positions).
            self._stopping = True
            try:
                consumer.close()
            finally:
                self._consumer = None
                self._set_health(assignment_state="starting")

    def _consume(self, consumer: KafkaConsumer, room: tuple[int, int]) -> list[KafkaMessage]:
        """The next messages, as soon as there are any.

        ``consume(n, t)`` returns when it has ``n`` messages *or* ``t`` has passed: asking for a whole batch
        would hold every record of a stream slower than ``batch_size / timeout_s`` for up to ``timeout_s``
        (the ~100 ms added latency the bench measured at half the limits). So while messages flow it takes
        what librdkafka has already fetched, up to the room (``t = 0``); once nothing is there it waits for the
        first message only (``n = 1``), which returns the moment one arrives, and the next call takes the rest.
        """
        if self._flowing:
            messages = consumer.consume(max(1, min(self._s.batch_size, room[0])), 0)
        else:
            messages = consumer.consume(1, self._s.timeout_s)
        # Without room everything is held: keep to the blocking call (it serves the callbacks, no busy loop).
        self._flowing = bool(messages) and room[0] > 0
        return messages

    def _room(self, consumer: KafkaConsumer) -> tuple[int, int]:
        """(records, bytes) this poll may hand over: none from the moment the buffer is full until it has
        drained to ``resume_ratio``; past ``full_wait_s`` of that every partition is held back."""
        source = self._room_source
        if source is None:
            return self._s.batch_size, 1 << 62
        free_r, free_b = source.room()
        transit_r, transit_b = self._in_transit()
        room_r, room_b = free_r - transit_r, free_b - transit_b
        if self._full_since is None:
            if room_r > 0 and room_b > 0:
                return room_r, room_b
            self._full_since = time.monotonic()
        held = self._holds.active(HoldReason.BUFFER_FULL)
        level_r, level_b = self._resume_level(source)
        if room_r >= level_r and room_b >= level_b:
            self._full_since = None
            if held:
                log.info(
                    "buffer drained (%d records held): resuming consumption", source.max_records - room_r
                )
                self._set_hold(consumer, Hold.everything(HoldReason.BUFFER_FULL, on=False))
            return room_r, room_b
        full_for = time.monotonic() - self._full_since
        if not held and full_for >= self._s.full_wait_s:
            log.info(
                "buffer full for %.1fs (%d of %d records, %d of %d bytes): pausing consumption",
                full_for,
                source.max_records - room_r,
                source.max_records,
                source.max_bytes - room_b,
                source.max_bytes,
            )
            self._set_hold(consumer, Hold.everything(HoldReason.BUFFER_FULL))
        return 0, 0

    def _in_transit(self) -> tuple[int, int]:
        """(records, bytes) handed to the loop and not yet taken by the engine: they count against the room."""
        return self._handed - self._landed, self._handed_bytes - self._landed_bytes

    def _resume_level(self, source: BufferRoom) -> tuple[int, int]:
        """The room (records, bytes) at which a full buffer is consumed from again."""
        ratio = 1 - self._s.resume_ratio
        return math.ceil(source.max_records * ratio), math.ceil(source.max_bytes * ratio)

    def _wait_for_room(self) -> None:
        """Until the engine has drained to the resume level, a command arrives, ``timeout_s`` passed (a room
        source that cannot wake this thread is read again then) or ``full_wait_s`` is up."""
        source = self._room_source
        assert source is not None
        assert self._full_since is not None
        self._wakeup.clear()
        (level_r, level_b), (transit_r, transit_b) = self._resume_level(source), self._in_transit()
        source.wake_when_free(level_r + transit_r, level_b + transit_b, self._wakeup.set)
        left = self._full_since + self._s.full_wait_s - time.monotonic()
        self._wakeup.wait(max(0.0, min(self._s.timeout_s, left)))

    def _landed_on_loop(self, batch: list[Inbound], size: int) -> None:
        try:
            self._link.accept(batch)
        finally:
            self._landed += len(batch)
            self._landed_bytes += size

    def _apply_commands(self, consumer: KafkaConsumer) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, Hold):
                self._set_hold(consumer, command)
            elif isinstance(command, CommitOffsets):
                self._commit_async(consumer, dict(command.offsets))
            else:
                self._final_offsets = dict(command.final)
                self._stopping = True
                return

    def _set_hold(self, consumer: KafkaConsumer, hold: Hold) -> None:
        everything = self._holds.everything()
        if not self._holds.apply(hold):
            return
        if self._holds.everything() != everything:
            now = self._holds.everything()
            if now:
                log.info("holding back every partition: %s", ", ".join(now))
            else:
                log.info("consuming again (was held back: %s)", ", ".join(everything))
        self._apply_pause(consumer)

    def _apply_pause(self, consumer: KafkaConsumer) -> None:
        """Pause exactly the assigned partitions some hold wants back; resume the others."""
        want = self._holds.held(self._assignment)
        pause = want - self._paused
        if pause:
            consumer.pause(_tps(pause))
        resume = (self._paused - want) & self._assignment
        if resume:
            consumer.resume(_tps(resume))
        if pause or resume:
            log.debug("paused %d, resumed %d partition(s)", len(pause), len(resume))
        self._paused = want
        self._metrics.paused_partitions.set(len(self._paused))

    def _hand_over(self, consumer: KafkaConsumer, messages: list[Any], room: tuple[int, int]) -> None:
        room_r, room_b = room
        batch: list[Inbound] = []
        size = 0
        rewind: dict[TP, int] = {}  # partition -> first offset not handed over (later ones follow it)
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._on_message_error(err)
                continue
            tp = TP(msg.topic(), msg.partition())
            offset = msg.offset()
            if tp in rewind or tp in self._paused or len(batch) >= room_r:
                rewind.setdefault(tp, offset)
                continue
            if self._fixed_topic is not None:
                start_end = self.plan.get(tp)
                if start_end is None or offset >= start_end[1]:
                    continue  # written after the replay started (e.g. by the replay itself): not ours
            item = self._transform(msg)
            # The first record of a poll goes even if it alone is larger than the room: a record bigger than
            # the whole byte bound must still get through (alone).
            if size + item.size > room_b and batch:
                rewind.setdefault(tp, offset)
                continue
            if self._fixed_topic is not None and offset + 1 >= self.plan[tp][1]:
                self._remaining.discard(tp)
            batch.append(item)
            size += item.size
        if rewind:
            batch.extend(self._rewind(consumer, rewind, messages))
        if batch:
            self._handed += len(batch)
            self._handed_bytes += size
            self._loop.call_soon_threadsafe(self._landed_on_loop, batch, size)

    def _rewind(self, consumer: KafkaConsumer, rewind: dict[TP, int], messages: list[Any]) -> list[Inbound]:
        """Seek each partition back to its first message not handed over, so it is fetched again later; a
        held partition is paused again. Returns the messages that could not be rewound (handed over after all:
        over the bound, never lost)."""
        kept: list[Inbound] = []
        for tp, offset in rewind.items():
            try:
                consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            except KafkaException as exc:
                log.warning(
                    "could not rewind %s to %d (%s): handing its records over anyway", tp, offset, exc
                )
                kept.extend(
                    self._transform(m)
                    for m in messages
                    if m.error() is None and TP(m.topic(), m.partition()) == tp and m.offset() >= offset
                )
                continue
            self.rewound += sum(
                1
                for m in messages
                if m.error() is None and TP(m.topic(), m.partition()) == tp and m.offset() >= offset
            )
            if tp in self._paused:
                consumer.pause(_tps({tp}))  # librdkafka did not take the earlier pause: again
        log.debug("rewound %d partition(s) (held back or no room)", len(rewind))
        return kept

    def _on_message_error(self, err: Any) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise KafkaException(err)
        _errors.warning(f"consumer:{err.code()}", "Kafka consumer error: %s", err)

    def _check_metadata_kept(self, consumer: KafkaConsumer) -> None:
        """Read one committed position with metadata back: a broker that keeps no commit metadata (some
        Kafka-compatible ones) makes restarts resend every record finished above the position. Said once."""
        assert self._metadata_probe is not None
        tp, sent = self._metadata_probe
        self._metadata_probe = None
        try:
            [back] = consumer.committed(
                [TopicPartition(tp.topic, tp.partition)], timeout=self._s.metadata_timeout_s
            )
        except (KafkaException, ValueError) as exc:
            log.debug("could not read commit metadata back (%s); will try again", exc)
            self._metadata_checked = False
            return
        if back.offset != sent.offset:
            self._metadata_checked = False  # moved on meanwhile (another commit): check a later one
            return
        kept = bool(back.metadata) and back.metadata == sent.metadata
        self.metadata_kept = kept
        self._metrics.commit_metadata_stored.set(1 if kept else 0)
        if not kept:
            log.warning(
                "the broker does not keep offset commit metadata: records finished above a partition's "
                "committed position are delivered again after a restart or rebalance (the watermark is "
                "committed as soon as it moves to keep that window small)"
            )

    def _commit_async(self, consumer: KafkaConsumer, offsets: dict[TP, Commit]) -> None:
        owned = {tp: c for tp, c in offsets.items() if tp in self._assignment}
        if not owned:
            return
        if not self._metadata_checked and self._metadata_sent is None:
            probe = next(((tp, c) for tp, c in owned.items() if c.metadata), None)
            if probe is not None:
                self._metadata_sent = probe
                self._metadata_checked = True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("commit sent: %s", _positions(owned))
        try:
            consumer.commit(offsets=_commit_list(owned), asynchronous=True)
        except KafkaException as exc:
            self._metrics.commits.labels("failed").inc()
            log.warning("async offset commit failed: %s", exc)

    def _commit_sync(self, consumer: KafkaConsumer, offsets: dict[TP, Commit], *, why: str) -> None:
        todo = {
            tp: c
            for tp, c in offsets.items()
            if tp in self._assignment and self._last_sync_commit.get(tp) != c
        }
        if not todo:
            return
        try:
            consumer.commit(offsets=_commit_list(todo), asynchronous=False)
        except KafkaException as exc:
            self._metrics.commits.labels("failed").inc()
            log.error("offset commit on %s failed: %s (those records will be delivered again)", why, exc)
            return
        self._last_sync_commit.update(todo)
        self._loop.call_soon_threadsafe(self._link.committed, {tp: c.offset for tp, c in todo.items()})
        log.info("committed %d partition(s) on %s", len(todo), why)

    # -- librdkafka callbacks (on this thread, inside consume/close) ----------------------------------

    def _on_assign(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        tps = [TP(p.topic, p.partition) for p in partitions]
        self._metrics.rebalances.labels("assigned").inc()
        log.info("assigned: %s", ", ".join(str(t) for t in tps) or "(nothing new)")
        if tps:
            self._loop.call_soon_threadsafe(
                self._link.assigned, tps, self._finished_ahead(consumer, partitions)
            )
        consumer.incremental_assign(partitions)
        self._assignment.update(tps)
        # librdkafka keeps a partition's pause flag across revoke and re-assignment: a partition this member
        # paused in an earlier assignment would come back paused, unknown to this thread (a silent stall).
        fresh = set(tps) - self._holds.held(self._assignment)
        if fresh:
            consumer.resume(_tps(fresh))
        self._apply_pause(consumer)  # held partitions (e.g. every one, while the key is refused) start paused
        self._set_health(
            broker_reachable=True, assignment_state="assigned" if self._assignment else "waiting"
        )

    def _finished_ahead(
        self, consumer: KafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TP, set[int]]:
        """Offsets the previous owner finished above its committed position (from the commit metadata)."""
        try:
            committed = consumer.committed(partitions, timeout=self._s.metadata_timeout_s)
        except KafkaException as exc:
            log.warning(
                "could not read committed metadata (%s); finished records may be delivered again", exc
            )
            return {}
        out: dict[TP, set[int]] = {}
        for c in committed:
            done = decode_done(c.metadata, c.offset)
            if done:
                out[TP(c.topic, c.partition)] = done
        if out:
            log.info(
                "%d record(s) above the committed positions were already finished; they will be skipped",
                sum(len(d) for d in out.values()),
            )
        return out

    def _on_revoke(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        tps = [TP(p.topic, p.partition) for p in partitions]
        self._metrics.rebalances.labels("revoked").inc()
        log.info("revoked: %s; draining in-flight records", ", ".join(str(t) for t in tps))
        offsets: dict[TP, Commit] = {}
        try:
            fut = asyncio.run_coroutine_threadsafe(self._link.release(tps), self._loop)
            offsets = fut.result(timeout=self._s.revoke_timeout_s + self._s.revoke_margin_s)
        except TimeoutError:
            # Not committing is safe: the new owner re-reads from the last commit (duplicates, never loss).
            log.error("revoked partitions not released in time; not committing them")
        except Exception:
            log.exception("BUG: releasing revoked partitions raised; not committing them")
        self._commit_sync(consumer, offsets, why="revoke")
        self._forget(consumer, partitions, tps)

    def _on_lost(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        tps = [TP(p.topic, p.partition) for p in partitions]
        self._metrics.rebalances.labels("lost").inc()
        log.warning(
            "lost: %s (no commit; their unfinished records go to the new owner)", ", ".join(map(str, tps))
        )
        self._loop.call_soon_threadsafe(self._link.lost, tps)
        self._forget(consumer, partitions, tps)

    def _forget(self, consumer: KafkaConsumer, partitions: list[TopicPartition], tps: list[TP]) -> None:
        try:
            consumer.incremental_unassign(partitions)
        except KafkaException as exc:
            log.warning("incremental_unassign failed: %s", exc)
        for tp in tps:
            self._assignment.discard(tp)
            self._paused.discard(tp)
            self._last_sync_commit.pop(tp, None)
            self._lag_base.pop(tp, None)
            with contextlib.suppress(KeyError):
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._metrics.paused_partitions.set(len(self._paused))
        self._set_health(assignment_state="assigned" if self._assignment else "waiting")

    def _on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        if log.isEnabledFor(logging.DEBUG):  # every commit's answer, in the order librdkafka reports them
            log.debug(
                "commit answered (%s): %s",
                err or "ok",
                ", ".join(
                    f"{p.topic}/{p.partition}={p.offset}{'!' + str(p.error) if p.error else ''}"
                    for p in partitions
                ),
            )
        if err is not None:
            if err.code() != KafkaError._NO_OFFSET:
                self._metrics.commits.labels("failed").inc()
                log.warning("offset commit failed: %s", err)
            return
        ok = {TP(p.topic, p.partition): p.offset for p in partitions if p.error is None and p.offset >= 0}
        sent = self._metadata_sent
        if sent is not None and sent[0] in ok:
            self._metadata_sent = None
            if ok[sent[0]] == sent[1].offset:
                self._metadata_probe = sent  # confirmed: read it back after this poll
            else:
                self._metadata_checked = False  # another commit's answer: check a later one
        failed = [p for p in partitions if p.error is not None]
        self._metrics.commits.labels("ok").inc()
        if failed:
            self._metrics.commits.labels("failed").inc()
            log.warning("offset commit failed for %s", ", ".join(f"{p.topic}/{p.partition}" for p in failed))
        if ok:
            self._loop.call_soon_threadsafe(self._link.committed, ok)

    def _on_error(self, err: Any) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            self._set_health(broker_reachable=False, broker_error=err.str())
        _errors.warning(f"client:{err.code()}", "Kafka client error: %s", err)

    def _on_stats(self, raw: str) -> None:
        try:
            stats = json.loads(raw)
        except ValueError:
            return
        brokers = stats.get("brokers") or {}
        if any(b.get("state") == "UP" for b in brokers.values() if b.get("nodeid", -1) >= 0):
            self._set_health(broker_reachable=True)
        for topic, tstats in (stats.get("topics") or {}).items():
            for pid, pstats in (tstats.get("partitions") or {}).items():
                tp = TP(topic, int(pid))
                if tp not in self._assignment:
                    continue
                hi, lo = pstats.get("hi_offset", -1), pstats.get("lo_offset", -1)
                committed = pstats.get("committed_offset", -1)
                # A group that never committed here will start from the log start (auto.offset.reset=earliest).
                base = committed if isinstance(committed, int) and committed >= 0 else lo
                if not isinstance(base, int) or base < 0:
                    continue
                self._lag_base[tp] = base
                if tp in self._paused:
                    continue  # not fetched, so its high watermark here is stale: see _refresh_paused_lag
                if isinstance(hi, int) and hi >= 0:
                    self._metrics.consumer_lag.labels(topic, str(tp.partition)).set(max(0, hi - base))

    def _refresh_paused_lag(self, consumer: KafkaConsumer) -> None:
        """A paused partition is not fetched, so librdkafka's statistics keep its last high watermark and the
        lag would freeze exactly when it matters (an outage, a refused key). Ask the broker instead, every
        ``lag_refresh_s``."""
        now = time.monotonic()
        if now < self._next_lag_refresh:
            return
        self._next_lag_refresh = now + self._s.lag_refresh_s
        for tp in sorted(self._paused):
            base = self._lag_base.get(tp)
            if base is None:
                continue
            try:
                _, hi = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=1.0, cached=False
                )
            except KafkaException as exc:
                log.debug("could not read the high watermark of %s: %s", tp, exc)
                return
            if hi >= 0:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, hi - base))

    # -- replay mode ---------------------------------------------------------------------------------

    def _assign_fixed(self, consumer: KafkaConsumer) -> None:
        topic = self._fixed_topic
        assert topic is not None
        md = consumer.list_topics(topic, timeout=self._s.metadata_timeout_s)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} not found"))
        tps = [TopicPartition(topic, p) for p in sorted(tmd.partitions)]
        committed = consumer.committed(tps, timeout=self._s.metadata_timeout_s)
        assign: list[TopicPartition] = []
        for c in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, c.partition), timeout=self._s.metadata_timeout_s
            )
            start = max(c.offset, low) if c.offset >= 0 else low
            tp = TP(topic, c.partition)
            self.plan[tp] = (start, high)
            if start < high:
                self._remaining.add(tp)
            assign.append(TopicPartition(topic, c.partition, start))
        done = {TP(topic, c.partition): decode_done(c.metadata, c.offset) for c in committed}
        self._set_health(broker_reachable=True, assignment_state="assigned")
        self._loop.call_soon_threadsafe(self._link.assigned, list(self.plan), done)
        consumer.assign(assign)
        self._assignment = set(self.plan)

    def _check_exhausted(self, consumer: KafkaConsumer) -> None:
        if self._exhausted_sent:
            return
        if self._remaining:
            # An offset gap at the end (compaction, transaction markers) has no record to see: ask the position.
            for p in consumer.position(_tps(self._remaining)):
                tp = TP(p.topic, p.partition)
                if p.offset >= 0 and p.offset >= self.plan[tp][1]:
                    self._remaining.discard(tp)
            if self._remaining:
                return
        self._exhausted_sent = True
        self._set_hold(consumer, Hold.everything(HoldReason.END_OF_REPLAY))
        self._loop.call_soon_threadsafe(self._link.exhausted)

    def _set_health(self, **fields: Any) -> None:
        if self._health is not None:
            for name, value in fields.items():
                setattr(self._health, name, value)


def _commit_list(commits: dict[TP, Commit]) -> list[TopicPartition]:
    return [
        TopicPartition(tp.topic, tp.partition, c.offset, metadata=c.metadata)
        if c.metadata
        else TopicPartition(tp.topic, tp.partition, c.offset)
        for tp, c in commits.items()
    ]


def _positions(commits: dict[TP, Commit]) -> str:
    return ", ".join(f"{tp}={c.offset}" for tp, c in sorted(commits.items()))


def _tps(tps: set[TP]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in sorted(tps)]
