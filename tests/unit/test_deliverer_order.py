"""The endpoint queue: a call that resumes a record (an earlier call of it was delivered) goes before the
records' first calls, so few records are ever half delivered — a crash resends every call of an unfinished
record, so each half-delivered record is a duplicate waiting to happen."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.attentive.endpoints import Endpoint
from connector.types import Call
from tests.unit.engine_fakes import FakeSender, Rigs, eventually

pytestmark = pytest.mark.looptime


@dataclass
class GatedSender(FakeSender):
    """Each limiter turn waits for a permit from the test."""

    permits: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def wait_turn(self, endpoint: Any) -> None:
        await self.permits.get()


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
