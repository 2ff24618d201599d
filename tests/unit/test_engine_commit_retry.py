"""Reproduction of a defect found by the chaos test (tests/integration/test_chaos.py), for the engine's owner.

A commit the broker never confirms (it failed: the broker was down, the coordinator moving) must be sent again:
otherwise, once the records of a partition are all finished during a broker outage, its watermark does not move
any more, ``Engine.commit_async`` sees the position it already *sent* and skips it, and the group's committed
offset stays behind until the next revoke or shutdown (lag alerts and KEDA see a backlog that is not there, and
a crash then resends everything since). Measured in the chaos test: 572 records behind, for good, after a
broker kill -9 and restart. Fixed: an unconfirmed commit is sent again after ``commit_interval_s``.
"""

from __future__ import annotations

import pytest

from connector.source.offsets import TP
from tests.unit.engine_fakes import Rigs, eventually, rec

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

T0 = TP("orders", 0)


async def test_an_unconfirmed_commit_is_sent_again(make_rig: Rigs) -> None:
    rig = await make_rig()  # commit_interval_s 0.05
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode(), timestamp_ms=1) for i in range(5)])
    assert await rig.engine.wait_idle(3.0)
    # The fake source never calls engine.committed(): every commit "failed", as during a broker outage.
    await eventually(lambda: [c.get(T0) for c in rig.source.commits].count(5) >= 2)
    sent = [c[T0] for c in rig.source.commits if T0 in c]
    assert sent.count(5) >= 2, f"commits of orders/0 sent while unconfirmed: {sent}"
