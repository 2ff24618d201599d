"""Backpressure: pause when the buffer is full (records or bytes), resume at half, never lose a record."""

from __future__ import annotations

import asyncio

import pytest

from connector.delivery.backpressure import BufferBudget
from connector.source.offsets import TP
from tests.unit.engine_fakes import FakeSender, delivery_settings, make_rig, rec

T0 = TP("orders", 0)


def test_budget_fills_on_records_and_drains_below_half() -> None:
    b = BufferBudget(max_records=4, max_bytes=10_000)
    assert [b.add(10) for _ in range(4)] == [False, False, False, True]
    assert b.full
    assert not b.remove(10)  # 3 left: above the resume threshold (2)
    assert b.remove(10)  # 2 left: resume
    assert not b.full


def test_budget_fills_on_bytes() -> None:
    b = BufferBudget(max_records=1000, max_bytes=1000)
    assert not b.add(600)
    assert b.add(600)
    assert not b.remove(600)  # 600 bytes left: above half of max_bytes, still full
    assert b.full
    assert b.remove(600)
    assert not b.full


def test_budget_rejects_a_silly_ratio() -> None:
    with pytest.raises(ValueError, match="resume_ratio"):
        BufferBudget(10, 10_000, resume_ratio=1.5)


async def test_engine_pauses_when_full_and_resumes_when_drained() -> None:
    sender = FakeSender(latency_s=0.01)
    rig = await make_rig(settings=delivery_settings(max_buffered_records=10, max_in_flight=2), sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept(
        [rec(i, key=f"k{i}".encode()) for i in range(12)]
    )  # a poll batch can overshoot a little
    assert "backpressure" in rig.source.paused
    assert rig.metrics.buffered_records._value.get() == 12
    await asyncio.wait_for(rig.engine.wait_idle(3), 4)
    assert ("backpressure", False) in rig.source.pause_log
    assert "backpressure" not in rig.source.paused
    assert rig.engine.stats()["delivered"] == 12
    assert rig.metrics.buffered_records._value.get() == 0
    await rig.close()
