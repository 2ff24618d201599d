"""Auth failures: pause everything, not ready, nothing dead-lettered, resume by itself once /v1/me works."""

from __future__ import annotations

import asyncio

import pytest

from connector.source.offsets import TP
from tests.unit.engine_fakes import FakeSender, Rigs, auth_error, eventually, rec

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

T0 = TP("orders", 0)


async def test_the_connector_starts_paused_and_not_ready_until_the_key_is_accepted(make_rig: Rigs) -> None:
    sender = FakeSender(me_error=auth_error())
    rig = await make_rig(sender=sender, auth_ok=False)
    await eventually(lambda: "auth" in rig.source.paused and sender.me_calls >= 2)
    assert "auth" in rig.source.paused
    assert rig.health.auth_ok is False
    assert sender.me_calls >= 2  # keeps checking, never gives up
    sender.me_error = None
    await asyncio.wait_for(rig.auth.wait_ok(), 1)
    await asyncio.sleep(0)
    assert "auth" not in rig.source.paused
    assert rig.health.auth_ok is True


async def test_a_401_pauses_holds_the_records_and_resumes_when_the_key_works_again(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.002)
    refused = True
    sender.default = lambda call: auth_error() if refused else None
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    sender.me_error = auth_error()
    rig.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(10)])
    await eventually(lambda: "auth" in rig.source.paused and rig.health.ready()[0] is False)
    assert "auth" in rig.source.paused
    assert rig.health.auth_ok is False
    assert rig.health.ready()[0] is False
    assert rig.engine.stats()["dead_lettered"] == 0
    assert rig.engine.stats()["pending"] == 10
    # While the gate is closed, calls wait at it instead of hammering the API with the refused key.
    sent_while_closed = len(sender.sent)
    await asyncio.sleep(0.2)
    assert len(sender.sent) == sent_while_closed
    refused = False
    sender.me_error = None
    await asyncio.wait_for(rig.engine.wait_idle(3), 4)
    assert rig.engine.stats()["delivered"] == 10
    assert rig.engine.stats()["dead_lettered"] == 0
    assert rig.producer.written == []
    assert rig.health.auth_ok is True
    assert "auth" not in rig.source.paused


async def test_an_unreachable_me_endpoint_keeps_the_gate_closed(make_rig: Rigs) -> None:
    from connector.errors import NetworkError

    sender = FakeSender(me_error=NetworkError("connection refused", endpoint="me"))
    rig = await make_rig(sender=sender, auth_ok=False)
    await eventually(lambda: rig.auth.checks >= 2)
    assert not rig.auth.ok
    assert rig.auth.checks >= 2
