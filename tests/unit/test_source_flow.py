"""The buffer bound on the poll thread: holds, room, and the rewind of messages that must not be handed over.

The consumer here is a fake backed by a per-partition log with positions, pause and seek — enough to replay
the path that broke the bound in the field: a pause issued right after an assignment that librdkafka did not
take, so a held partition kept returning messages while the engine's buffer was full. (The same poll thread
runs against the real broker in tests/integration/test_engine_backpressure_e2e.py.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from connector.delivery.backpressure import BufferBudget, FairShares
from connector.observability.metrics import Metrics
from connector.source.flow import Hold, HoldReason, Holds
from connector.source.kafka import Inbound
from connector.source.offsets import TP, Commit
from connector.source.poller import Poller, PollSettings
from tests.unit.test_engine_poller import FakeMessage, eventually, stop_pollers

T0, T1 = TP("signups", 0), TP("signups", 1)


class LogConsumer:
    """A consumer over in-memory partition logs: ``consume`` returns the next messages of partitions not
    paused, taking partitions in turn; the first ``ignore_pauses`` pause calls do not take (librdkafka's pause
    right after an assignment); ``seek`` moves a partition's position back."""

    def __init__(self, logs: dict[TP, int], *, ignore_pauses: int = 0) -> None:
        self.logs = logs  # partition -> number of messages in it
        self.pos = dict.fromkeys(logs, 0)
        self.paused: set[TP] = set()
        self.ignore_pauses = ignore_pauses
        self.seeks: list[tuple[TP, int]] = []
        self.pause_calls: list[set[TP]] = []
        self.consumes = 0
        self.cb: dict[str, Any] = {}
        self.lock = threading.Lock()

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.cb = callbacks
        self.cb["on_assign"](self, [TopicPartition(tp.topic, tp.partition) for tp in self.logs])

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        pass

    def assign(self, partitions: list[TopicPartition]) -> None:  # replay mode: start where told
        for p in partitions:
            self.pos[TP(p.topic, p.partition)] = max(p.offset, 0)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in self.logs]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, self.pos[TP(p.topic, p.partition)]) for p in partitions]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        parts = [tp.partition for tp in self.logs if tp.topic == topic]
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(parts))})

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, -1001) for p in partitions]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        out: list[Any] = []
        self.consumes += 1
        with self.lock:
            progress = True
            while len(out) < num_messages and progress:
                progress = False
                for tp, end in self.logs.items():
                    if len(out) < num_messages and self.pos[tp] < end and tp not in self.paused:
                        out.append(FakeMessage(tp.topic, tp.partition, self.pos[tp]))
                        self.pos[tp] += 1
                        progress = True
        if not out:
            time.sleep(0.002)
        return out

    def pause(self, partitions: list[TopicPartition]) -> None:
        tps = {TP(p.topic, p.partition) for p in partitions}
        self.pause_calls.append(tps)
        if self.ignore_pauses > 0:
            self.ignore_pauses -= 1
            return
        self.paused |= tps

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {TP(p.topic, p.partition) for p in partitions}

    def seek(self, partition: TopicPartition) -> None:
        with self.lock:
            tp = TP(partition.topic, partition.partition)
            self.seeks.append((tp, partition.offset))
            self.pos[tp] = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        pass

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> Any:
        return (0, self.logs[TP(partition.topic, partition.partition)])

    def close(self) -> None:
        pass


class SlowEngine:
    """The engine side: takes every record into a :class:`BufferBudget` and finishes them when told."""

    def __init__(self, max_records: int, max_bytes: int = 1 << 30) -> None:
        self.buffer = BufferBudget(max_records, max_bytes)
        self.held: list[Inbound] = []
        self.seen: list[tuple[TP, int]] = []
        self.peak = 0
        self.peak_bytes = 0

    def assigned(self, tps: list[TP], done: dict[TP, set[int]] | None = None) -> None:
        pass

    def accept(self, batch: list[Inbound]) -> None:
        for inb in batch:
            self.buffer.add(inb.size)
            self.held.append(inb)
            self.seen.append((inb.tp, inb.offset))
        self.peak = max(self.peak, self.buffer.records)
        self.peak_bytes = max(self.peak_bytes, self.buffer.bytes)

    def finish(self, n: int) -> None:
        for inb in self.held[:n]:
            self.buffer.remove(inb.size)
        del self.held[:n]

    async def release(self, tps: list[TP]) -> dict[TP, Commit]:
        return {}

    def lost(self, tps: list[TP]) -> None:
        pass

    def committed(self, positions: dict[TP, int]) -> None:
        pass

    def exhausted(self) -> None:
        pass


StartPoller = Callable[..., Poller]


@pytest.fixture
async def start_poller() -> AsyncIterator[StartPoller]:
    """``start_poller(consumer, engine, batch_size=50, full_wait_s=0.05) -> Poller``: a started poll thread
    over the fake consumer, bounded by the engine's buffer; every one still running when the test ends is
    stopped. A full buffer holds every partition back after ``full_wait_s``."""
    started: list[Poller] = []

    def start(
        consumer: LogConsumer, engine: SlowEngine, batch_size: int = 50, full_wait_s: float = 0.05
    ) -> Poller:
        poller = Poller(
            lambda conf: consumer,
            {"group.id": "g"},
            link=engine,
            loop=asyncio.get_running_loop(),
            topics=["signups"],
            settings=PollSettings(batch_size=batch_size, timeout_s=0.005, full_wait_s=full_wait_s),
            metrics=Metrics(CollectorRegistry()),
            room=engine.buffer,
        )
        started.append(poller)
        poller.start()
        return poller

    try:
        yield start
    finally:
        await stop_pollers(started)


async def drain_slowly(engine: SlowEngine, total: int, step: int) -> None:
    """Finish ``step`` records whenever the engine holds some, until ``total`` were seen and finished."""
    while len(engine.seen) < total or engine.held:
        if engine.held:
            engine.finish(step)
        await asyncio.sleep(0.001)


async def test_a_deep_backlog_drained_slowly_never_exceeds_the_bound(start_poller: StartPoller) -> None:
    consumer = LogConsumer({T0: 3000})
    engine = SlowEngine(max_records=200)
    poller = start_poller(consumer, engine)
    await asyncio.wait_for(drain_slowly(engine, 3000, step=3), 30)
    assert engine.peak <= 200
    assert engine.seen == [(T0, i) for i in range(3000)]  # each once, in order
    poller.stop()
    await poller.wait()


async def test_a_buffer_full_for_a_moment_pauses_nothing(start_poller: StartPoller) -> None:
    """The bench's drain: the buffer fills and drains again and again. Pausing every partition each time
    dropped librdkafka's prefetch, and a resumed partition was fetched again only up to ~1 s later (the
    buffer ran empty for 0.2-0.7 s after every resume). The poll thread waits for room instead, so nothing is
    paused or rewound, and the bound holds."""
    consumer = LogConsumer({T0: 1500, T1: 1500})
    engine = SlowEngine(max_records=200)
    poller = start_poller(consumer, engine, full_wait_s=600)  # never full that long here
    await asyncio.wait_for(drain_slowly(engine, 3000, step=3), 30)
    assert engine.peak == 200  # it filled up (the drain is slower than the poll thread), and no further
    assert consumer.pause_calls == []
    assert consumer.seeks == []
    assert sorted(engine.seen) == sorted([(T0, i) for i in range(1500)] + [(T1, i) for i in range(1500)])
    poller.stop()
    await poller.wait()


async def test_a_buffer_full_for_long_holds_every_partition_and_polling_goes_on(
    start_poller: StartPoller,
) -> None:
    """Rebalance callbacks are only served inside consume(): past full_wait_s every partition is paused and
    consume() is called again; once the engine drains, consumption resumes."""
    consumer = LogConsumer({T0: 1000, T1: 1000})
    engine = SlowEngine(max_records=100)
    poller = start_poller(consumer, engine)
    await eventually(lambda: consumer.paused == {T0, T1}, timeout=10)
    assert engine.buffer.records == 100
    polls = consumer.consumes
    await eventually(lambda: consumer.consumes > polls + 3, timeout=10)  # callbacks still served
    await asyncio.wait_for(drain_slowly(engine, 2000, step=5), 60)
    assert engine.peak <= 100
    assert consumer.paused == set()
    poller.stop()
    await poller.wait()


async def test_a_pause_that_did_not_take_is_rewound_and_the_bound_holds(start_poller: StartPoller) -> None:
    """The field report: 20,000 signups waiting, max 5,000, the gauge at 19,918. librdkafka went on returning
    messages of partitions it had been told to pause (right after their assignment); the poll thread's own
    record said "paused", so the buffer-full pause was never re-sent, and each poll took one more message."""
    consumer = LogConsumer({T0: 2000, T1: 2000}, ignore_pauses=1_000_000)  # no pause ever takes
    engine = SlowEngine(max_records=100)
    poller = start_poller(consumer, engine)
    await eventually(lambda: engine.peak >= 100, timeout=10)
    # The buffer is full and nothing finishes: the messages that keep coming are rewound, not handed over.
    await eventually(lambda: len(consumer.seeks) >= 5, timeout=10)
    assert engine.buffer.records == 100
    assert len(consumer.pause_calls) > 1  # the held partitions are paused again
    await asyncio.wait_for(drain_slowly(engine, 4000, step=5), 60)
    assert engine.peak <= 100
    assert sorted(engine.seen) == sorted([(T0, i) for i in range(2000)] + [(T1, i) for i in range(2000)])
    assert poller.rewound > 0
    poller.stop()
    await poller.wait()


async def test_a_held_partition_is_rewound_while_the_others_flow(start_poller: StartPoller) -> None:
    consumer = LogConsumer({T0: 500, T1: 500}, ignore_pauses=1)  # the first pause does not take
    engine = SlowEngine(max_records=10_000)
    poller = start_poller(consumer, engine)
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset({T0})))
    await eventually(lambda: sum(1 for tp, _ in engine.seen if tp == T1) == 500, timeout=10)
    seen_t0 = [o for tp, o in engine.seen if tp == T0]
    assert seen_t0 == list(range(len(seen_t0)))  # only what came before the hold, in order, no gap
    poller.hold(Hold(HoldReason.ROUTING_HELD, frozenset()))
    await eventually(lambda: sum(1 for tp, _ in engine.seen if tp == T0) == 500, timeout=10)
    assert [o for tp, o in engine.seen if tp == T0] == list(range(500))
    poller.stop()
    await poller.wait()


async def test_the_byte_bound_holds_too(start_poller: StartPoller) -> None:
    consumer = LogConsumer({T0: 1000})
    size = len(b"k") + len(b"v") + len(b"h") + len(b"1")  # what a FakeMessage weighs
    engine = SlowEngine(max_records=10_000, max_bytes=40 * size)
    poller = start_poller(consumer, engine)
    await asyncio.wait_for(drain_slowly(engine, 1000, step=2), 30)
    assert engine.peak_bytes <= 40 * size
    assert engine.seen == [(T0, i) for i in range(1000)]
    poller.stop()
    await poller.wait()


def test_holds_add_up_and_a_reason_replaces_its_own() -> None:
    h = Holds()
    assigned = [T0, T1]
    assert h.apply(Hold(HoldReason.OVER_SHARE, frozenset({T0})))
    assert h.held(assigned) == {T0}
    assert not h.apply(Hold(HoldReason.OVER_SHARE, frozenset({T0})))  # unchanged
    h.apply(Hold(HoldReason.ROUTING_HELD, frozenset({T1, TP("gone", 0)})))
    assert h.held(assigned) == {T0, T1}  # not partitions that are no longer assigned
    h.apply(Hold.everything(HoldReason.AUTH))
    assert h.everything() == [HoldReason.AUTH]
    h.apply(Hold(HoldReason.OVER_SHARE, frozenset()))
    h.apply(Hold.everything(HoldReason.AUTH, on=False))
    assert h.held(assigned) == {T1}
    assert h.reasons() == [HoldReason.ROUTING_HELD]


# -- FairShares: the O(1) bookkeeping agrees with the plain definition, whatever the order ------------------


def reference_throttled(
    held: dict[TP, list[int]], max_r: int, max_b: int, prev: frozenset[TP], pool_full: bool
) -> tuple[frozenset[TP], bool]:
    """The definition, computed from scratch (the pre-O(1) algorithm)."""
    n = max(1, len(held))
    share_r, share_b = max(1, int(max_r * 0.5 / n)), max(1, int(max_b * 0.5 / n))
    pool_r, pool_b = max(0, max_r - n * share_r), max(0, max_b - n * share_b)
    borrowed_r = sum(max(0, r - share_r) for r, _ in held.values())
    borrowed_b = sum(max(0, b - share_b) for _, b in held.values())
    if borrowed_r >= pool_r or borrowed_b >= pool_b:
        pool_full = True
    elif pool_full and borrowed_r <= pool_r * 0.5 and borrowed_b <= pool_b * 0.5:
        pool_full = False
    if not pool_full:
        return frozenset(), False
    low_r, low_b = share_r * 0.5, share_b * 0.5
    return (
        frozenset(
            tp
            for tp, (r, b) in held.items()
            if r >= share_r or b >= share_b or (tp in prev and (r > low_r or b > low_b))
        ),
        True,
    )


PARTS = [TP("orders", 0), TP("loyalty", 0), TP("signups", 0), TP("signups", 1)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "remove", "assign", "drop"]), st.sampled_from(PARTS), st.integers(1, 50)
        ),
        max_size=300,
    )
)
def test_fair_shares_agree_with_the_definition_after_any_sequence(ops: list[tuple[str, TP, int]]) -> None:
    s: FairShares[TP] = FairShares(max_records=40, max_bytes=2000)
    held: dict[TP, list[int]] = {}
    sizes: dict[TP, list[int]] = {}
    prev: frozenset[TP] = frozenset()
    pool_full = False
    for op, tp, size in ops:
        if op == "assign":
            s.assign(tp)
            held.setdefault(tp, [0, 0])
            sizes.setdefault(tp, [])
        elif op == "drop":
            s.drop(tp)
            held.pop(tp, None)
            sizes.pop(tp, None)
            prev = prev - {tp}
        elif tp in held and op == "add":
            s.add(tp, size)
            held[tp][0] += 1
            held[tp][1] += size
            sizes[tp].append(size)
        elif tp in held and op == "remove" and sizes[tp]:
            gone = sizes[tp].pop()
            s.remove(tp, gone)
            held[tp][0] -= 1
            held[tp][1] -= gone
        else:
            continue
        # The reference only moves on a record of a partition it judges; on (re)assignment it recomputes.
        prev, pool_full = reference_throttled(held, 40, 2000, prev, pool_full)
        assert s.pool_full == pool_full
        assert s.throttled() == prev, (op, tp)
