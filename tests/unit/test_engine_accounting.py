"""The buffer's accounting under any interleaving of accept, route, finish, revoke and loss.

Randomized: each seed drives the real engine (lanes, deliverer, dead-letter writer; only the seams are fake)
through a different order of operations. After every step the counts are never negative and never above the
bound the poll thread was given; at the end, with every partition gone, the buffer is empty and every
consumed record is accounted for.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from connector.errors import ApiPermanentError
from connector.source.offsets import TP
from tests.unit.engine_fakes import FakeSender, Rigs, delivery_settings, rec

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

PARTS = [TP("orders", 0), TP("orders", 1), TP("signups", 0)]


@pytest.mark.parametrize("seed", range(12))
async def test_accounting_holds_under_any_order_of_operations(
    seed: int,
    caplog: pytest.LogCaptureFixture,
    make_rig: Rigs,
) -> None:
    rng = random.Random(seed)
    sender = FakeSender(latency_s=0.002)
    sender.default = lambda call: (
        ApiPermanentError("400", endpoint="custom_event", status=400, body="{}")
        if rng.random() < 0.1
        else None
    )
    rig = await make_rig(settings=delivery_settings(max_buffered_records=50, max_in_flight=4), sender=sender)
    assigned: set[TP] = set()
    next_offset = dict.fromkeys(PARTS, 0)
    consumed = handed_off = 0
    for _ in range(60):
        op = rng.random()
        tp = rng.choice(PARTS)
        if tp not in assigned:
            rig.engine.assigned([tp])
            assigned.add(tp)
            next_offset[tp] = 0  # a new assignment starts again at the committed position (0 here)
        elif op < 0.55:
            room = rig.engine.buffer.room()[0]  # what the poll thread would allow
            n = rng.randint(0, max(0, min(room, 8)))
            batch = []
            for _ in range(n):
                o = next_offset[tp]
                next_offset[tp] += 1
                shapes: list[dict[str, Any]] = [{}, {"calls": 2}, {"skip": "no_rule"}, {"key": f"k{o % 3}"}]
                value = rng.choice(shapes)
                if rng.random() < 0.1:
                    rig.router.errors[f"{tp.topic}/{tp.partition}/{o}"] = ValueError("no rule builds it")
                batch.append(
                    rec(o, topic=tp.topic, partition=tp.partition, key=f"k{o % 5}".encode(), value=value)
                )
            rig.engine.accept(batch)
            consumed += len(batch)
        elif op < 0.7:
            before = rig.engine.stats()
            await rig.engine.release([tp])
            assigned.discard(tp)
            handed_off += rig.engine.stats()["consumed"] - before["consumed"]
        elif op < 0.78:
            rig.engine.lost([tp])
            assigned.discard(tp)
        else:
            await asyncio.sleep(rng.random() * 0.01)
        records, size = rig.engine.buffer.records, rig.engine.buffer.bytes
        assert 0 <= records <= 50
        assert size >= 0
        assert rig.engine.stats()["pending"] >= 0
    await asyncio.wait_for(rig.engine.wait_idle(10), 11)
    for tp in list(assigned):
        await rig.engine.release([tp])
    await asyncio.sleep(0)
    assert (rig.engine.buffer.records, rig.engine.buffer.bytes) == (0, 0)
    stats = rig.engine.stats()
    assert stats["consumed"] == consumed
    assert stats["pending"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "lane worker" in r.getMessage()]
