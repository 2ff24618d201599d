"""The endpoint queue: a call that resumes a record (an earlier call of it was delivered) goes before the
records' first calls, so few records are ever half delivered — a crash resends every call of an unfinished
record, so each half-delivered record is a duplicate waiting to happen."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.attentive.endpoints import Endpoint
from connector.errors import ApiPermanentError
from connector.source.offsets import TP
from connector.types import Call
from tests.unit.engine_fakes import FakeSender, Rigs, delivery_settings, eventually, rec

pytestmark = pytest.mark.looptime


@dataclass
class GatedSender(FakeSender):
    """Each limiter turn waits for a permit from the test."""

    permits: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def wait_turn(self, endpoint: Any) -> None:
        await self.permits.get()

    def try_turn(self, endpoint: Any) -> bool:
        try:
            self.permits.get_nowait()
        except asyncio.QueueEmpty:
            return False
        return True


def call(record_id: str) -> Call:
    return Call(Endpoint.CUSTOM_EVENT, {"type": "x"}, record_id, "rule")


async def test_a_call_resuming_a_record_goes_before_first_calls_that_waited_longer(make_rig: Rigs) -> None:
    sender = GatedSender()
    rig = await make_rig(sender=sender)
    d = rig.deliverer
    first = [asyncio.create_task(d.deliver(call(f"orders/0/{i}/0"))) for i in range(3)]
    await eventually(lambda: len(d._queues["custom_event"]) == 3)  # noqa: SLF001
    resuming = asyncio.create_task(d.deliver(call("orders/0/9/1"), resumes=True))
    await eventually(lambda: len(d._queues["custom_event"]) == 4)  # noqa: SLF001
    for _ in range(4):
        sender.permits.put_nowait(None)
    await asyncio.gather(*first, resuming)
    assert [rid for rid, _ in sender.sent] == ["orders/0/9/1", "orders/0/0/0", "orders/0/1/0", "orders/0/2/0"]


async def test_calls_of_each_kind_keep_their_order(make_rig: Rigs) -> None:
    sender = GatedSender()
    rig = await make_rig(sender=sender)
    d = rig.deliverer
    ids = ["a/0/1/1", "a/0/2/0", "a/0/3/1", "a/0/4/0"]
    tasks = [asyncio.create_task(d.deliver(call(rid), resumes=rid.endswith("/1"))) for rid in ids]
    await eventually(lambda: len(d._queues["custom_event"]) == 4)  # noqa: SLF001
    for _ in ids:
        sender.permits.put_nowait(None)
    await asyncio.gather(*tasks)
    assert [rid for rid, _ in sender.sent] == ["a/0/1/1", "a/0/3/1", "a/0/2/0", "a/0/4/0"]


async def test_first_calls_of_multi_call_records_wait_while_too_many_are_half_delivered(
    make_rig: Rigs,
) -> None:
    sender = GatedSender()
    rig = await make_rig(sender=sender, max_half_delivered=2)
    d = rig.deliverer
    tickets = [d.ticket() for _ in range(3)]
    opening = [asyncio.create_task(d.deliver(call(f"l/0/{i}/0"), ticket=tickets[i])) for i in range(3)]
    await eventually(lambda: len(d._queues["custom_event"]) == 3)  # noqa: SLF001
    single = asyncio.create_task(d.deliver(call("o/0/7")))  # a single call: never held back
    for _ in range(3):
        sender.permits.put_nowait(None)
    await asyncio.gather(*opening[:2], single)
    assert [rid for rid, _ in sender.sent] == ["l/0/0/0", "l/0/1/0", "o/0/7"]
    assert d.half_delivered == 2 and not opening[2].done()
    # Their second calls still go (they are what brings the count down), ahead of the waiting first call.
    second = asyncio.create_task(d.deliver(call("l/0/0/1"), resumes=True, ticket=tickets[0]))
    sender.permits.put_nowait(None)
    await second
    assert not opening[2].done()
    d.release(tickets[0])  # record 0 finished: room for the third record's first call
    sender.permits.put_nowait(None)
    await opening[2]
    assert [rid for rid, _ in sender.sent][-2:] == ["l/0/0/1", "l/0/2/0"]
    assert d.half_delivered == 2
    d.release(tickets[1])
    d.release(tickets[1])  # releasing twice is harmless
    d.release(tickets[2])
    assert d.half_delivered == 0


async def test_the_engine_releases_a_multi_call_record_when_it_finishes_or_is_dead_lettered(
    make_rig: Rigs,
) -> None:
    rig = await make_rig(max_half_delivered=1)
    rig.engine.assigned([TP("orders", 0)])
    # Three records of two calls each, on different keys: one at a time past its first call, all delivered.
    rig.engine.accept([rec(i, key=f"k{i}".encode(), value={"calls": 2}) for i in range(3)])
    assert await rig.engine.wait_idle(5.0)
    assert sorted(rig.sender.delivered) == sorted(f"orders/0/{i}/{n}" for i in range(3) for n in range(2))
    assert rig.deliverer.half_delivered == 0


async def test_a_dead_lettered_multi_call_record_is_released(make_rig: Rigs) -> None:
    sender = FakeSender()
    sender.script["orders/0/0/1"] = [ApiPermanentError("422", endpoint="custom_event", status=422)]
    rig = await make_rig(sender=sender, max_half_delivered=1)
    rig.engine.assigned([TP("orders", 0)])
    rig.engine.accept([rec(0, key=b"a", value={"calls": 2}), rec(1, key=b"b", value={"calls": 2})])
    assert await rig.engine.wait_idle(5.0)
    assert len(rig.producer.written) == 1  # record 0, its second call refused
    assert sorted(sender.delivered) == ["orders/0/0/0", "orders/0/1/0", "orders/0/1/1"]
    assert rig.deliverer.half_delivered == 0


async def test_a_revoke_lets_go_at_once_of_a_record_that_sent_nothing_and_drains_the_started_one(
    make_rig: Rigs,
) -> None:
    sender = FakeSender(slow={"orders/0/0/0": 0.1, "orders/0/0/1": 0.1})
    rig = await make_rig(sender=sender, max_half_delivered=1)
    rig.engine.assigned([TP("orders", 0)])
    rig.engine.accept([rec(0, key=b"a", value={"calls": 2}), rec(1, key=b"b", value={"calls": 2})])
    await eventually(lambda: sender.in_flight == 1 and rig.deliverer.half_delivered == 1)
    positions = await rig.engine.release([TP("orders", 0)])
    # Record 0 (first call on the wire) was drained; record 1 (held back by the cap, nothing sent) let go.
    assert sender.delivered == ["orders/0/0/0", "orders/0/0/1"]
    assert positions[TP("orders", 0)].offset == 1
    assert rig.deliverer.half_delivered == 0


async def test_first_calls_are_served_oldest_record_first_whatever_their_arrival(make_rig: Rigs) -> None:
    """A record that waited for its key's earlier record arrives late at its endpoint's queue; served by
    arrival it would wait the whole queue again (once per record of its key). Oldest record first instead;
    calls without an order keep their arrival order among themselves."""
    sender = GatedSender()
    rig = await make_rig(sender=sender)
    d = rig.deliverer
    arrivals = [("o/0/30/0", 30), ("o/0/31/0", 31), ("o/0/7/0", 7), ("o/0/32/0", 32), ("o/0/8/0", 8)]
    tasks = []
    for n, (rid, order) in enumerate(arrivals, start=1):
        tasks.append(asyncio.create_task(d.deliver(call(rid), order=order)))
        await eventually(lambda: len(d._queues["custom_event"]) == n)  # noqa: B023, SLF001
    for _ in arrivals:
        sender.permits.put_nowait(None)
    await asyncio.gather(*tasks)
    assert [rid for rid, _ in sender.sent] == ["o/0/7/0", "o/0/8/0", "o/0/30/0", "o/0/31/0", "o/0/32/0"]


async def test_a_resuming_call_still_goes_before_an_older_first_call(make_rig: Rigs) -> None:
    sender = GatedSender()
    rig = await make_rig(sender=sender)
    d = rig.deliverer
    old_first = asyncio.create_task(d.deliver(call("o/0/1/0"), order=1))
    await eventually(lambda: len(d._queues["custom_event"]) == 1)  # noqa: SLF001
    resuming = asyncio.create_task(d.deliver(call("o/0/50/1"), resumes=True, order=50))
    await eventually(lambda: len(d._queues["custom_event"]) == 2)  # noqa: SLF001
    sender.permits.put_nowait(None)
    sender.permits.put_nowait(None)
    await asyncio.gather(old_first, resuming)
    assert [rid for rid, _ in sender.sent] == ["o/0/50/1", "o/0/1/0"]


async def test_the_engine_serves_a_record_that_waited_for_its_key_before_later_records(
    make_rig: Rigs,
) -> None:
    """Offsets 0 and 1 share a key, 2..5 do not: 1 joins the endpoint's queue only after 0 is delivered, behind
    2..5 — and still goes next, being older."""
    sender = GatedSender()
    rig = await make_rig(sender=sender)
    rig.engine.assigned([TP("orders", 0)])
    keys = [b"a", b"a", b"b", b"c", b"d", b"e"]
    rig.engine.accept([rec(i, key=k) for i, k in enumerate(keys)])
    queues = rig.deliverer._queues  # noqa: SLF001

    def waiting() -> int:
        return len(queues["custom_event"]) if "custom_event" in queues else 0

    await eventually(lambda: waiting() == 5)  # 0, 2, 3, 4, 5 (1 waits in its key's lane)
    sender.permits.put_nowait(None)
    await eventually(lambda: sender.delivered == ["orders/0/0"] and waiting() == 5)  # 1 has joined
    for _ in range(5):
        sender.permits.put_nowait(None)
    assert await rig.engine.wait_idle(5.0)
    assert sender.delivered == [f"orders/0/{i}" for i in (0, 1, 2, 3, 4, 5)]


# --- the fast path: a call nobody waits ahead of takes its turn and slots at once -----------------------


@dataclass
class CountingTurns(FakeSender):
    """Counts the turns taken at once (``try_turn``) and through the pump (``wait_turn``)."""

    at_once: int = 0
    pumped: int = 0

    async def wait_turn(self, endpoint: Any) -> None:
        self.pumped += 1

    def try_turn(self, endpoint: Any) -> bool:
        self.at_once += 1
        return True


async def test_a_call_nobody_waits_ahead_of_goes_without_the_pump(make_rig: Rigs) -> None:
    sender = CountingTurns()
    rig = await make_rig(sender=sender)
    d = rig.deliverer
    for i in range(3):
        await d.deliver(call(f"f/0/{i}"))
    assert sender.delivered == ["f/0/0", "f/0/1", "f/0/2"]
    assert (sender.at_once, sender.pumped) == (3, 0)
    queue = d._queues["custom_event"]  # noqa: SLF001
    assert queue.task is None and len(queue) == 0  # never queued, no pump started


async def test_a_call_arriving_while_others_wait_for_a_slot_queues_behind_them(make_rig: Rigs) -> None:
    """With the one request slot busy, later calls queue; a call arriving after them must not take the slot
    the moment it frees (the fast path asks for an empty queue and a slot nobody waits for)."""
    sender = CountingTurns(slow={"s/0/0": 0.1})
    rig = await make_rig(settings=delivery_settings(max_in_flight=1), sender=sender)
    d = rig.deliverer
    first = asyncio.create_task(d.deliver(call("s/0/0")))
    await eventually(lambda: sender.in_flight == 1)
    second = asyncio.create_task(d.deliver(call("s/0/1")))
    await eventually(lambda: len(d._queues["custom_event"]) == 1)  # noqa: SLF001
    third = asyncio.create_task(d.deliver(call("s/0/2")))
    await asyncio.gather(first, second, third)
    assert sender.delivered == ["s/0/0", "s/0/1", "s/0/2"]
    assert sender.at_once == 1  # only the first went at once


async def test_the_fast_path_keeps_the_half_delivered_cap(make_rig: Rigs) -> None:
    sender = CountingTurns(slow={"h/0/0/0": 0.1})
    rig = await make_rig(sender=sender, max_half_delivered=1)
    d = rig.deliverer
    tickets = [d.ticket(), d.ticket()]
    first = asyncio.create_task(d.deliver(call("h/0/0/0"), ticket=tickets[0]))
    await eventually(lambda: d.half_delivered == 1)
    held = asyncio.create_task(d.deliver(call("h/0/1/0"), ticket=tickets[1]))
    await eventually(lambda: len(d._queues["custom_event"]) == 1)  # noqa: SLF001
    await first
    assert not held.done()  # record 0 is still half delivered: record 1's first call waits
    d.release(tickets[0])
    await held
    assert sender.delivered == ["h/0/0/0", "h/0/1/0"]
    assert d.half_delivered == 1
    d.release(tickets[1])


# --- _Slots ------------------------------------------------------------------------------------------


async def test_slots_serve_waiters_first_come_first_served_and_skip_the_cancelled() -> None:
    from connector.delivery.deliverer import _Slots

    slots = _Slots(1)
    assert slots.available() and slots.try_take()
    assert not slots.available() and not slots.try_take()
    order: list[str] = []

    async def take(name: str) -> None:
        await slots.take()
        order.append(name)

    a, b, c = (asyncio.create_task(take(n)) for n in "abc")
    await eventually(lambda: len(slots._waiters) == 3)  # noqa: SLF001
    b.cancel()
    slots.give()  # straight to a, not back to the free count
    await a
    assert slots.free == 0 and not slots.try_take()  # c still waits: nobody may take the slot past it
    slots.give()  # b was cancelled: c gets it
    await c
    assert order == ["a", "c"]
    slots.give()
    assert slots.free == 1 and slots.available()


async def test_a_slot_handed_to_a_waiter_cancelled_in_the_same_turn_is_passed_on() -> None:
    from connector.delivery.deliverer import _Slots

    slots = _Slots(0)
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await eventually(lambda: len(slots._waiters) == 2)  # noqa: SLF001
    slots.give()  # handed to first ...
    first.cancel()  # ... which is cancelled before it runs: the slot goes on to second
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert slots.free == 0
