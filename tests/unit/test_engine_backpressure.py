"""Backpressure: pause when the buffer is full (records or bytes), resume when drained, never lose a record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connector.delivery.backpressure import BufferBudget, FairShares
from connector.source.offsets import TP
from tests.unit.engine_fakes import FakeSender, Rigs, delivery_settings, rec

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

T0 = TP("orders", 0)


def test_budget_counts_records_and_bytes_and_reports_the_room_left() -> None:
    b = BufferBudget(max_records=4, max_bytes=10_000)
    for _ in range(4):
        b.add(10)
    assert b.room() == (0, 9_960)
    b.remove(10)
    assert b.room() == (1, 9_970)
    assert (b.records, b.bytes) == (3, 30)


def test_budget_refuses_to_go_negative() -> None:
    b = BufferBudget(max_records=4, max_bytes=10_000)
    b.add(10)
    b.remove(10)
    with pytest.raises(ValueError, match="accounting"):
        b.remove(10)


def test_budget_wakes_the_poll_thread_once_enough_is_free() -> None:
    b = BufferBudget(max_records=4, max_bytes=10_000)
    for _ in range(4):
        b.add(10)
    woken: list[str] = []
    b.wake_when_free(2, 0, lambda: woken.append("a"))
    b.remove(10)
    assert woken == []  # one free: not yet
    b.remove(10)
    assert woken == ["a"]
    b.remove(10)
    assert woken == ["a"]  # once per request
    b.wake_when_free(1, 9_995, lambda: woken.append("b"))  # free enough records, not bytes (9,990)
    assert woken == ["a"]
    b.remove(10)
    assert woken == ["a", "b"]
    b.wake_when_free(1, 0, lambda: woken.append("c"))  # free already: at once
    assert woken == ["a", "b", "c"]


def test_budget_rejects_silly_bounds() -> None:
    with pytest.raises(ValueError, match="positive"):
        BufferBudget(0, 10_000)


async def test_engine_counts_what_it_holds_and_reports_it_once_per_loop_turn(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.01)
    rig = await make_rig(settings=delivery_settings(max_buffered_records=10, max_in_flight=2), sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(10)])
    assert rig.engine.buffer.room()[0] == 0  # the poll thread hands over nothing more until it drains
    await asyncio.sleep(0)  # the gauge is published once per event-loop turn
    assert rig.metrics.registry.get_sample_value("attentive_connector_buffered_records") == 10
    await asyncio.wait_for(rig.engine.wait_idle(3), 4)
    assert rig.engine.stats()["delivered"] == 10
    assert rig.engine.buffer.room()[0] == 10
    await asyncio.sleep(0)
    assert rig.metrics.registry.get_sample_value("attentive_connector_buffered_records") == 0


def test_fair_shares_throttle_only_partitions_over_their_share_once_the_pool_is_spent() -> None:
    a, b, c = TP("orders", 0), TP("loyalty", 0), TP("signups", 0)
    s: FairShares[TP] = FairShares(max_records=30, max_bytes=1_000_000)
    for tp in (a, b, c):
        s.assign(tp)
    assert s.shares()[0] == 5  # half of the buffer is guaranteed: 15 / 3 partitions; the other 15 is a pool
    for _ in range(19):
        s.add(a, 10)
    assert s.throttled() == frozenset()  # a borrowed 14 of the pool's 15
    s.add(a, 10)
    assert s.throttled() == {a}  # pool spent: only a is over its share; b and c keep their 5 each
    for _ in range(5):
        s.add(c, 10)
    assert s.throttled() == {a, c}
    assert s.held(a) + s.held(b) + s.held(c) <= 30
    for _ in range(5):
        s.remove(c, 10)
    assert s.throttled() == {a}
    for _ in range(12):
        s.remove(a, 10)
    assert s.throttled() == frozenset()  # 8 held by a: the pool (3 of 15 used) is open again
    s.drop(a)
    assert s.shares()[0] == 7


def test_fair_shares_count_bytes_too() -> None:
    a, b = TP("orders", 0), TP("signups", 0)
    s: FairShares[TP] = FairShares(max_records=1000, max_bytes=1000)
    s.assign(a)
    s.assign(b)
    s.add(a, 1000)  # share 250 bytes each, pool 500: a borrowed 750
    assert s.throttled() == {a}
    s.add(b, 100)
    assert s.throttled() == {a}  # b is under its byte share: it keeps consuming


async def test_a_busy_topic_cannot_starve_a_slow_one(make_rig: Rigs) -> None:
    """A backlog on three topics, fetched busiest first: the signups partition still gets its share."""
    orders, loyalty, signups = TP("orders", 0), TP("loyalty", 0), TP("signups", 0)
    sender = FakeSender(latency_s=0.02)
    sender.slow = {f"signups/0/{i}": 0.05 for i in range(1000)}
    rig = await make_rig(settings=delivery_settings(max_buffered_records=60, max_in_flight=8), sender=sender)
    rig.engine.assigned([orders, loyalty, signups])
    next_offset = {orders: 0, loyalty: 0, signups: 0}
    peak = 0
    for _ in range(60):
        # What the poll thread does: fetch at most the room left, from partitions not paused (orders first,
        # as librdkafka might when their queue is deepest).
        room = min(20, rig.engine.buffer.room()[0])
        batch: list[Any] = []
        for tp in (orders, loyalty, signups):
            if tp in rig.source.throttled or rig.source.paused:
                continue
            while room > 0 and len([b for b in batch if b.tp == tp]) < 20:
                batch.append(rec(next_offset[tp], topic=tp.topic, key=f"k{next_offset[tp]}".encode()))
                next_offset[tp] += 1
                room -= 1
        if batch:
            rig.engine.accept(batch)
        peak = max(peak, rig.engine.buffer.records)
        await asyncio.sleep(0.01)
    assert peak <= 60  # the total bound holds
    assert next_offset[signups] > 0
    assert any(r.startswith("signups/") for r in sender.delivered)  # not starved
    assert any(orders in t for t in rig.source.throttle_log)  # the busy partition was held to its share
    assert all(signups not in t for t in rig.source.throttle_log[:1])
    await asyncio.wait_for(rig.engine.wait_idle(5), 6)
    assert rig.source.throttled == frozenset()  # drained: nothing throttled any more
