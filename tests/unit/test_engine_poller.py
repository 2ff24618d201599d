"""The poll thread with a scripted fake consumer: rebalance handling, commits, pauses, bounds, replay mode.

(The same code runs against the real broker in tests/integration/test_engine_*.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from connector.observability.health import HealthState
from connector.observability.metrics import Metrics
from connector.source.flow import Hold, HoldReason
from connector.source.kafka import Inbound
from connector.source.offsets import TP, Commit, encode_done
from connector.source.poller import Poller, PollSettings


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, err: Any = None) -> None:
        self._t, self._p, self._o, self._err = topic, partition, offset, err

    def error(self) -> Any:
        return self._err

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("h", b"1")]

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class FakeError:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"error {self._code}"


class FakeConsumer:
    """Each consume() runs the next scripted step: ("assign"|"revoke"|"lost", [TopicPartition]) or a list of
    messages. ``committed_meta`` answers committed()."""

    def __init__(
        self, steps: list[Any], committed_meta: dict[tuple[str, int], tuple[int, str]] | None = None
    ) -> None:
        self.steps = deque(steps)
        self.committed_meta = committed_meta or {}
        self.cb: dict[str, Any] = {}
        self.assigned: set[tuple[str, int]] = set()
        self.paused: set[tuple[str, int]] = set()
        self.commits: list[tuple[bool, list[tuple[str, int, int, str | None]]]] = []
        self.consume_sizes: list[int] = []
        self.closed = False
        self.log: list[str] = []
        self.watermarks: dict[tuple[str, int], tuple[int, int]] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.conf: dict[str, Any] = {}

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.cb = callbacks

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.consume_sizes.append(num_messages)
        if not self.steps:
            time.sleep(0.01)
            return []
        step = self.steps.popleft()
        if isinstance(step, threading.Event):  # a gate: the script goes on once the test sets it
            if not step.is_set():
                self.steps.appendleft(step)
                time.sleep(0.005)
            return []
        if isinstance(step, tuple):
            kind, parts = step
            self.log.append(kind)
            self.cb[f"on_{kind}"](self, parts)
            return []
        ready = [m for m in step if (m.topic(), m.partition()) not in self.paused]
        if len(ready) > num_messages:  # like librdkafka, what was fetched but not asked for stays queued
            self.steps.appendleft(ready[num_messages:])
        return ready[:num_messages]

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.log.append("incremental_assign")
        self.assigned |= {(p.topic, p.partition) for p in partitions}

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self.log.append("incremental_unassign")
        self.assigned -= {(p.topic, p.partition) for p in partitions}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = {(p.topic, p.partition) for p in partitions}
        self.positions = {(p.topic, p.partition): p.offset for p in partitions}

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.log.append("commit-async" if asynchronous else "commit-sync")
        self.commits.append((asynchronous, [(p.topic, p.partition, p.offset, p.metadata) for p in offsets]))

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        out = []
        for p in partitions:
            off, meta = self.committed_meta.get((p.topic, p.partition), (-1001, ""))
            out.append(
                TopicPartition(p.topic, p.partition, off, metadata=meta)
                if meta
                else TopicPartition(p.topic, p.partition, off)
            )
        return out

    def seek(self, partition: TopicPartition) -> None:
        self.log.append(f"seek {partition.topic}/{partition.partition}@{partition.offset}")

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self.positions.get((p.topic, p.partition), -1001))
            for p in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> Any:
        return self.watermarks.get((partition.topic, partition.partition), (0, 0))

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        parts = {p for (t, p) in self.watermarks if t == topic}

        class TMD:
            error = None
            partitions = dict.fromkeys(parts)

        class MD:
            topics = {topic: TMD()} if parts else {}

        return MD()

    def close(self) -> None:
        self.closed = True
        if self.assigned and "on_revoke" in self.cb:
            self.cb["on_revoke"](self, [TopicPartition(t, p) for t, p in sorted(self.assigned)])


class FakeLink:
    """The engine side, on the loop."""

    def __init__(self) -> None:
        self.assigned_calls: list[tuple[list[TP], dict[TP, set[int]] | None]] = []
        self.batches: list[list[Inbound]] = []
        self.released: list[list[TP]] = []
        self.lost_calls: list[list[TP]] = []
        self.confirmed: list[dict[TP, int]] = []
        self.release_result: dict[TP, Commit] = {}
        self.release_delay = 0.0
        self.release_error: BaseException | None = None
        self.exhausted_called = asyncio.Event()

    def assigned(self, tps: list[TP], done: dict[TP, set[int]] | None = None) -> None:
        self.assigned_calls.append((tps, done))

    def accept(self, batch: list[Inbound]) -> None:
        self.batches.append(batch)

    async def release(self, tps: list[TP]) -> dict[TP, Commit]:
        self.released.append(tps)
        await asyncio.sleep(self.release_delay)
        if self.release_error is not None:
            raise self.release_error
        return {tp: c for tp, c in self.release_result.items() if tp in tps}

    def lost(self, tps: list[TP]) -> None:
        self.lost_calls.append(tps)

    def committed(self, positions: dict[TP, int]) -> None:
        self.confirmed.append(positions)

    def exhausted(self) -> None:
        self.exhausted_called.set()


P0, P1 = TopicPartition("orders", 0), TopicPartition("orders", 1)
T0, T1 = TP("orders", 0), TP("orders", 1)


class Pollers:
    """The ``make_poller`` fixture: ``make_poller(consumer, link, **kw) -> (poller, metrics, health)`` builds a
    poller (not started) over the fake consumer; every one still running when the test ends is stopped."""

    def __init__(self) -> None:
        self.built: list[Poller] = []

    def __call__(
        self, consumer: FakeConsumer, link: FakeLink, **kw: Any
    ) -> tuple[Poller, Metrics, HealthState]:
        metrics = Metrics(CollectorRegistry())
        health = HealthState()
        kw.setdefault("topics", ["orders"])
        kw.setdefault("settings", PollSettings(timeout_s=0.01, revoke_timeout_s=0.5, metadata_timeout_s=1))

        def factory(conf: dict[str, Any]) -> FakeConsumer:
            consumer.conf = conf
            return consumer

        poller = Poller(
            factory,
            {"group.id": "g"},
            link=link,
            loop=asyncio.get_running_loop(),
            metrics=metrics,
            health=health,
            **kw,
        )
        self.built.append(poller)
        return poller, metrics, health


async def stop_pollers(pollers: list[Poller]) -> None:
    """Stop every started poller whose thread still runs and wait for it (a test that failed half-way)."""
    for poller in pollers:
        if poller._thread.ident is None:
            continue  # never started
        if not poller.done:
            poller.stop()
        with contextlib.suppress(Exception):  # what ended the thread was the test's business
            await asyncio.wait_for(poller.wait(), 5)


@pytest.fixture
async def make_poller() -> AsyncIterator[Pollers]:
    pollers = Pollers()
    try:
        yield pollers
    finally:
        await stop_pollers(pollers.built)


async def eventually(pred: Any, timeout: float = 5.0) -> None:
    """Wait until ``pred()`` holds; fail after ``timeout`` (a fail-safe, not a bound under test)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_assignment_with_commit_metadata_then_records_then_pause_and_resume(
    make_poller: Pollers,
) -> None:
    consumer = FakeConsumer(
        [("assign", [P0, P1]), [FakeMessage("orders", 0, 5), FakeMessage("orders", 1, 0)]],
        committed_meta={("orders", 0): (5, encode_done(5, [7, 8]))},
    )
    link = FakeLink()
    poller, metrics, health = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: sum(map(len, link.batches)) == 2)
    [(tps, done)] = link.assigned_calls
    assert tps == [T0, T1]
    assert done == {T0: {7, 8}}  # the previous owner's finished offsets above its commit
    assert [(i.tp, i.offset, i.record.headers if i.record else None) for b in link.batches for i in b] == [
        (T0, 5, (("h", b"1"),)),
        (T1, 0, (("h", b"1"),)),
    ]
    assert health.assignment_state == "assigned"
    poller.hold(Hold.everything(HoldReason.SHUTDOWN))
    poller.hold(Hold.everything(HoldReason.AUTH))
    await eventually(lambda: consumer.paused == {("orders", 0), ("orders", 1)})
    poller.hold(Hold.everything(HoldReason.SHUTDOWN, on=False))
    poller.commit({T0: Commit(6)})  # a marker: applied after the release above
    await eventually(lambda: consumer.commits)
    assert consumer.paused  # still held back for auth
    poller.hold(Hold.everything(HoldReason.AUTH, on=False))
    await eventually(lambda: not consumer.paused)
    assert metrics.registry.get_sample_value("attentive_connector_paused_partitions") == 0
    assert health.last_poll is not None
    poller.stop()
    await poller.wait()


async def test_partitions_assigned_while_paused_are_paused_at_once(make_poller: Pollers) -> None:
    consumer = FakeConsumer([("assign", [P0])])
    link = FakeLink()
    poller, _, _ = make_poller(consumer, link)
    poller.hold(Hold.everything(HoldReason.AUTH))
    poller.start()
    await eventually(lambda: consumer.assigned == {("orders", 0)})
    assert consumer.paused == {("orders", 0)}
    poller.stop()
    await poller.wait()


async def test_revoke_releases_then_commits_synchronously_with_metadata_then_unassigns(
    make_poller: Pollers,
) -> None:
    consumer = FakeConsumer([("assign", [P0, P1]), ("revoke", [P0])])
    link = FakeLink()
    meta = encode_done(10, [12])
    link.release_result = {T0: Commit(10, meta)}
    poller, metrics, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: "incremental_unassign" in consumer.log)
    assert link.released == [[T0]]
    assert consumer.commits == [(False, [("orders", 0, 10, meta)])]
    assert consumer.log.index("commit-sync") < consumer.log.index("incremental_unassign")
    assert consumer.assigned == {("orders", 1)}
    assert metrics.registry.get_sample_value("attentive_connector_rebalances_total", {"kind": "revoked"}) == 1
    await eventually(lambda: link.confirmed == [{T0: 10}])
    poller.stop()
    await poller.wait()


async def test_a_release_that_times_out_commits_nothing(make_poller: Pollers) -> None:
    consumer = FakeConsumer([("assign", [P0]), ("revoke", [P0])])
    link = FakeLink()
    link.release_result = {T0: Commit(10)}
    link.release_delay = 30  # the engine never answers in time
    poller, _, _ = make_poller(
        consumer, link, settings=PollSettings(timeout_s=0.01, revoke_timeout_s=0.05, revoke_margin_s=0.05)
    )
    poller.start()
    await eventually(lambda: "incremental_unassign" in consumer.log, timeout=5)
    assert consumer.commits == []  # not committing is safe: the new owner redoes from the last commit
    poller.stop()
    await poller.wait()


async def test_lost_partitions_are_dropped_without_a_commit(make_poller: Pollers) -> None:
    consumer = FakeConsumer([("assign", [P0]), ("lost", [P0])])
    link = FakeLink()
    poller, metrics, health = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: link.lost_calls)
    assert link.lost_calls == [[T0]]
    assert consumer.commits == []
    assert metrics.registry.get_sample_value("attentive_connector_rebalances_total", {"kind": "lost"}) == 1
    await eventually(lambda: health.assignment_state == "waiting")
    poller.stop()
    await poller.wait()


async def test_async_commits_only_for_owned_partitions_and_stop_commits_synchronously_once(
    make_poller: Pollers,
) -> None:
    consumer = FakeConsumer([("assign", [P0])])
    link = FakeLink()
    link.release_result = {T0: Commit(7)}
    poller, _, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: consumer.assigned)
    poller.commit({T0: Commit(3), T1: Commit(9)})  # T1 is not ours
    await eventually(lambda: consumer.commits)
    assert consumer.commits == [(True, [("orders", 0, 3, None)])]
    poller.stop({T0: Commit(7)})
    await poller.wait()
    assert consumer.closed
    # The final sync commit, then close() revokes: the release returns the same position — not committed twice.
    assert consumer.commits[1:] == [(False, [("orders", 0, 7, None)])]


class FixedRoom:
    """A BufferRoom whose answer the test sets."""

    def __init__(self, records: int, max_records: int = 100) -> None:
        self.records = records
        self.max_records = max_records
        self.max_bytes = 1 << 30

    def room(self) -> tuple[int, int]:
        return self.records, self.max_bytes

    def wake_when_free(self, records: int, bytes_: int, wake: Callable[[], None]) -> None:
        pass  # cannot wake the poll thread: it reads the room again after its poll timeout


async def test_each_poll_fetches_no_more_than_the_engine_can_take(make_poller: Pollers) -> None:
    msgs = [FakeMessage("orders", 0, i) for i in range(100)]
    consumer = FakeConsumer([("assign", [P0]), msgs])
    link = FakeLink()
    room = FixedRoom(40)
    poller, _, _ = make_poller(consumer, link, room=room)
    poller.start()
    await eventually(lambda: sum(map(len, link.batches)) >= 40)
    assert max(consumer.consume_sizes) <= 40
    assert max(map(len, link.batches)) <= 40
    room.records = 0
    # Full: every partition is held back, and polling goes on (callbacks, heartbeats) one message at a time.
    await eventually(lambda: consumer.paused == {("orders", 0)})
    n = len(consumer.consume_sizes)
    await eventually(lambda: len(consumer.consume_sizes) > n + 2)
    assert set(consumer.consume_sizes[n:]) == {1}
    room.records = 9  # under a tenth of the bound free: still held
    n = len(consumer.consume_sizes)
    await eventually(lambda: len(consumer.consume_sizes) > n + 2)
    assert consumer.paused == {("orders", 0)}
    # A tenth free is the resume level, not half: slow partitions may own most of a full buffer for minutes,
    # and waiting for half would run the fast ones dry.
    room.records = 10
    await eventually(lambda: not consumer.paused)
    poller.stop()
    await poller.wait()


async def test_a_fatal_consumer_error_ends_the_thread_with_the_error(make_poller: Pollers) -> None:
    consumer = FakeConsumer(
        [("assign", [P0]), [FakeMessage("orders", 0, 0, err=FakeError(KafkaError._FATAL, fatal=True))]]
    )
    link = FakeLink()
    poller, _, _ = make_poller(consumer, link)
    poller.start()
    with pytest.raises(Exception, match="error"):
        await asyncio.wait_for(poller.wait(), 3)
    assert consumer.closed


async def test_non_fatal_errors_are_logged_and_polling_continues(
    caplog: pytest.LogCaptureFixture, make_poller: Pollers
) -> None:
    consumer = FakeConsumer(
        [
            ("assign", [P0]),
            [FakeMessage("orders", 0, 0, err=FakeError(KafkaError.UNKNOWN_TOPIC_OR_PART))],
            [FakeMessage("orders", 0, 1)],
        ]
    )
    link = FakeLink()
    poller, _, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: link.batches)
    assert [i.offset for i in link.batches[0]] == [1]
    assert "Kafka consumer error" in caplog.text
    poller.stop()
    await poller.wait()


async def test_replay_mode_reads_from_the_committed_offsets_to_the_end_seen_at_start(
    make_poller: Pollers,
) -> None:
    consumer = FakeConsumer(
        [[FakeMessage("orders.dlq", 0, 3), FakeMessage("orders.dlq", 0, 4), FakeMessage("orders.dlq", 0, 5)]],
        committed_meta={("orders.dlq", 0): (3, "")},
    )
    consumer.watermarks = {("orders.dlq", 0): (0, 5), ("orders.dlq", 1): (2, 2)}
    link = FakeLink()
    poller, _, _ = make_poller(consumer, link, topics=None, fixed_topic="orders.dlq")
    poller.start()
    await asyncio.wait_for(link.exhausted_called.wait(), 3)
    assert poller.plan == {TP("orders.dlq", 0): (3, 5), TP("orders.dlq", 1): (2, 2)}
    assert [i.offset for b in link.batches for i in b] == [3, 4]  # offset 5 was written after the start
    assert consumer.paused  # nothing more is read
    poller.stop()
    await poller.wait()


async def test_replay_mode_without_the_topic_fails_clearly(make_poller: Pollers) -> None:
    consumer = FakeConsumer([])
    poller, _, _ = make_poller(consumer, FakeLink(), topics=None, fixed_topic="nope.dlq")
    poller.start()
    with pytest.raises(Exception, match="nope.dlq"):
        await asyncio.wait_for(poller.wait(), 3)


def test_poller_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Poller(
            lambda c: FakeConsumer([]),
            {},
            link=FakeLink(),
            loop=asyncio.new_event_loop(),
            metrics=Metrics(CollectorRegistry()),
        )


async def test_consumer_lag_comes_from_the_client_statistics(make_poller: Pollers) -> None:
    import json

    consumer = FakeConsumer([("assign", [P0, P1])])
    link = FakeLink()
    poller, metrics, health = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: consumer.assigned)
    stats = {
        "brokers": {"b1": {"nodeid": 1, "state": "UP"}},
        "topics": {
            "orders": {
                "partitions": {
                    "0": {"hi_offset": 120, "lo_offset": 0, "committed_offset": 100},
                    "1": {"hi_offset": 50, "lo_offset": 10, "committed_offset": -1001},  # never committed
                    "-1": {"hi_offset": -1, "lo_offset": -1, "committed_offset": -1001},
                }
            },
            "other": {"partitions": {"0": {"hi_offset": 9, "lo_offset": 0, "committed_offset": 0}}},
        },
    }
    consumer.conf["stats_cb"](json.dumps(stats))  # librdkafka calls it from inside consume()
    assert (
        metrics.registry.get_sample_value(
            "attentive_connector_consumer_lag", {"topic": "orders", "partition": "0"}
        )
        == 20
    )
    assert (
        metrics.registry.get_sample_value(
            "attentive_connector_consumer_lag", {"topic": "orders", "partition": "1"}
        )
        == 40
    )
    assert health.broker_reachable is True
    poller.stop()
    await poller.wait()


async def test_throttle_pauses_only_the_partitions_over_their_share(make_poller: Pollers) -> None:
    consumer = FakeConsumer([("assign", [P0, P1])])
    link = FakeLink()
    poller, metrics, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: consumer.assigned == {("orders", 0), ("orders", 1)})
    poller.hold(Hold(HoldReason.OVER_SHARE, frozenset({T0})))
    await eventually(lambda: consumer.paused == {("orders", 0)})  # orders/1 keeps being fetched
    assert metrics.registry.get_sample_value("attentive_connector_paused_partitions") == 1
    poller.hold(Hold.everything(HoldReason.AUTH))  # a hold of everything pauses everything…
    await eventually(lambda: consumer.paused == {("orders", 0), ("orders", 1)})
    poller.hold(Hold.everything(HoldReason.AUTH, on=False))  # …and lifting it leaves only the throttled one
    await eventually(lambda: consumer.paused == {("orders", 0)})
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset({T1})))  # holds of two reasons add up
    await eventually(lambda: consumer.paused == {("orders", 0), ("orders", 1)})
    poller.hold(Hold(HoldReason.OVER_SHARE, frozenset()))
    await eventually(lambda: consumer.paused == {("orders", 1)})
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset()))
    await eventually(lambda: not consumer.paused)
    poller.stop()
    await poller.wait()


class CallbackConsumer(FakeConsumer):
    """Serves on_commit callbacks inside the next consume(), as librdkafka does; committed() answers with
    what the broker kept (``keeps_metadata`` False: like a Kafka-compatible broker that drops it)."""

    def __init__(self, steps: list[Any], *, keeps_metadata: bool) -> None:
        super().__init__(steps)
        self.keeps_metadata = keeps_metadata
        self.pending_cb: list[list[TopicPartition]] = []
        self.answered = 0  # on_commit callbacks served

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        super().commit(offsets=offsets, asynchronous=asynchronous)
        for p in offsets:
            self.committed_meta[(p.topic, p.partition)] = (
                p.offset,
                (p.metadata or "") if self.keeps_metadata else "",
            )
        if asynchronous:
            self.pending_cb.append([TopicPartition(p.topic, p.partition, p.offset) for p in offsets])

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        while self.pending_cb:
            self.conf["on_commit"](None, self.pending_cb.pop(0))
            self.answered += 1
        return super().consume(num_messages, timeout)


@pytest.mark.parametrize("keeps", [True, False])
async def test_a_broker_that_drops_commit_metadata_is_detected_once(
    keeps: bool,
    caplog: pytest.LogCaptureFixture,
    make_poller: Pollers,
) -> None:
    consumer = CallbackConsumer([("assign", [P0])], keeps_metadata=keeps)
    link = FakeLink()
    poller, metrics, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: consumer.assigned)
    poller.commit({T0: Commit(5, encode_done(5, [7]))})
    gauge = "attentive_connector_commit_metadata_stored"
    await eventually(lambda: poller.metadata_kept is not None)
    assert poller.metadata_kept is keeps
    assert metrics.registry.get_sample_value(gauge) == (1 if keeps else 0)
    poller.commit({T0: Commit(6, encode_done(6, [8]))})
    await eventually(lambda: len(consumer.commits) == 2)
    # Its answer is served in a later consume() and the read-back runs after that consume: wait for the poll
    # loop to have come round once more, or a check of this commit (the bug) could come after the assert.
    await eventually(lambda: consumer.answered >= 2)
    n = len(consumer.consume_sizes)
    await eventually(lambda: len(consumer.consume_sizes) > n + 1)
    warnings = [r for r in caplog.records if "does not keep offset commit metadata" in r.getMessage()]
    assert len(warnings) == (0 if keeps else 1)
    poller.stop()
    await poller.wait()


async def test_the_lag_of_a_paused_partition_is_read_from_the_broker_not_frozen_statistics(
    make_poller: Pollers,
) -> None:
    """A paused partition is not fetched: librdkafka's statistics keep its old high watermark. During an
    outage (everything held back) the lag must keep growing, so it is read from the broker instead."""
    import json

    consumer = FakeConsumer([("assign", [P0])])
    link = FakeLink()
    poller, metrics, _ = make_poller(
        consumer, link, settings=PollSettings(timeout_s=0.01, metadata_timeout_s=1, lag_refresh_s=0.01)
    )
    poller.start()
    await eventually(lambda: consumer.assigned)
    lag = 'attentive_connector_consumer_lag{partition="0",topic="orders"}'

    def value() -> float | None:
        return metrics.registry.get_sample_value(
            "attentive_connector_consumer_lag", {"topic": "orders", "partition": "0"}
        )

    stale = {
        "topics": {
            "orders": {"partitions": {"0": {"hi_offset": 120, "lo_offset": 0, "committed_offset": 100}}}
        }
    }
    consumer.conf["stats_cb"](json.dumps(stale))
    assert value() == 20, lag
    poller.hold(Hold.everything(HoldReason.AUTH))
    await eventually(lambda: consumer.paused)
    consumer.watermarks[("orders", 0)] = (0, 500)  # the backlog grows on the broker
    consumer.conf["stats_cb"](json.dumps(stale))  # …while the statistics still say 120
    await eventually(lambda: value() == 400)
    poller.stop()
    await poller.wait()


async def test_a_partition_paused_in_an_earlier_assignment_comes_back_resumed(make_poller: Pollers) -> None:
    """librdkafka keeps a partition's pause flag across revoke and re-assignment (the fake does too): a
    partition held back when it was revoked must not come back silently paused (the stall the chaos test saw
    after a scale-down)."""
    gate_revoke, gate_assign = threading.Event(), threading.Event()
    consumer = FakeConsumer([("assign", [P0]), gate_revoke, ("revoke", [P0]), gate_assign, ("assign", [P0])])
    link = FakeLink()
    poller, _, _ = make_poller(consumer, link)
    poller.start()
    await eventually(lambda: consumer.assigned == {("orders", 0)})
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset({T0})))
    await eventually(lambda: consumer.paused == {("orders", 0)})
    gate_revoke.set()
    await eventually(lambda: not consumer.assigned)
    assert consumer.paused == {("orders", 0)}  # still flagged inside "librdkafka"
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset()))  # the engine let go of it (its partition is gone)
    poller.commit({T0: Commit(1)})  # a marker: applied (and ignored: not ours) after the release above
    await asyncio.sleep(0)
    gate_assign.set()
    await eventually(lambda: consumer.log.count("incremental_assign") == 2)
    await eventually(lambda: not consumer.paused)
    poller.stop()
    await poller.wait()


class BatchWaitingConsumer(FakeConsumer):
    """librdkafka's ``consume(n, t)``: it returns when it has ``n`` messages or ``t`` has passed (messages are
    fed by the test with :meth:`arrive`, after the scripted steps). Asking a slow stream for a whole batch waits
    out the timeout."""

    def __init__(self, steps: list[Any]) -> None:
        super().__init__(steps)
        self.queue: deque[Any] = deque()
        self.ready = threading.Condition()

    def arrive(self, message: Any) -> None:
        with self.ready:
            self.queue.append(message)
            self.ready.notify_all()

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.steps:
            return super().consume(num_messages, timeout)
        with self.ready:
            self.ready.wait_for(lambda: len(self.queue) >= num_messages, timeout=timeout)
            return [self.queue.popleft() for _ in range(min(num_messages, len(self.queue)))]


async def test_a_record_of_a_slow_stream_is_handed_over_without_waiting_for_a_full_batch(
    make_poller: Pollers,
) -> None:
    # A poll timeout far longer than the test's wait: asking for a whole batch (as the poll once did) holds a
    # record of a slow stream for the whole timeout; it must be handed over as soon as it has arrived.
    consumer = BatchWaitingConsumer([("assign", [P0])])
    link = FakeLink()
    settings = PollSettings(timeout_s=60, batch_size=500, revoke_timeout_s=0.5, metadata_timeout_s=1)
    poller, _, _ = make_poller(consumer, link, settings=settings)
    poller.start()
    await eventually(lambda: consumer.assigned)
    consumer.arrive(FakeMessage("orders", 0, 0))
    await eventually(lambda: sum(map(len, link.batches)) == 1)
    for offset in (1, 2, 3):
        consumer.arrive(FakeMessage("orders", 0, offset))
    await eventually(lambda: sum(map(len, link.batches)) == 4)
    assert [i.offset for b in link.batches for i in b] == [0, 1, 2, 3]
    poller.stop()
    consumer.arrive(FakeMessage("orders", 0, 4))  # wakes the waiting poll, so the stop is applied
    await poller.wait()
