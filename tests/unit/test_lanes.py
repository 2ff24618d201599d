"""Key-ordered lanes: one at a time and in order per key, parallel across keys, revocable per partition."""

from __future__ import annotations

import asyncio

from connector.delivery.lanes import Lanes
from connector.source.offsets import TP
from tests.unit.engine_fakes import eventually


async def test_same_key_runs_in_order_one_at_a_time_and_keys_run_in_parallel() -> None:
    active: dict[str, int] = {}
    max_parallel = 0
    seen: list[tuple[str, int]] = []

    async def worker(item: tuple[str, int]) -> None:
        nonlocal max_parallel
        key, n = item
        active[key] = active.get(key, 0) + 1
        assert active[key] == 1, "two items of one key at once"
        max_parallel = max(max_parallel, sum(active.values()))
        await asyncio.sleep(0.01 if n % 2 else 0.002)
        seen.append(item)
        active[key] -= 1

    lanes: Lanes[tuple[str, int]] = Lanes(worker)
    for n in range(5):
        for key in ("a", "b", "c"):
            lanes.submit((TP("t", 0), key), (key, n))
    assert len(lanes) == 15
    assert await lanes.wait_idle(5)
    for key in ("a", "b", "c"):
        assert [n for k, n in seen if k == key] == [0, 1, 2, 3, 4]
    assert max_parallel == 3
    assert lanes.lane_count == 0


async def test_a_slow_key_does_not_hold_other_keys() -> None:
    gate = asyncio.Event()
    done: list[str] = []

    async def worker(item: str) -> None:
        if item == "slow":
            await gate.wait()
        done.append(item)

    lanes: Lanes[str] = Lanes(worker)
    lanes.submit((TP("t", 0), b"k1"), "slow")
    lanes.submit((TP("t", 0), b"k1"), "after-slow")
    lanes.submit((TP("t", 0), b"k2"), "fast")
    await eventually(lambda: done == ["fast"])
    gate.set()
    assert await lanes.wait_idle(1)
    assert done == ["fast", "slow", "after-slow"]


async def test_worker_exception_is_logged_and_the_lane_moves_on(caplog) -> None:  # type: ignore[no-untyped-def]
    done: list[int] = []

    async def worker(item: int) -> None:
        if item == 1:
            raise RuntimeError("bug")
        done.append(item)

    lanes: Lanes[int] = Lanes(worker)
    for i in range(3):
        lanes.submit((TP("t", 0), "k"), i)
    assert await lanes.wait_idle(1)
    assert done == [0, 2]
    assert "lane worker failed" in caplog.text


async def test_drop_queued_keeps_running_items_and_other_partitions() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    done: list[str] = []

    async def worker(item: str) -> None:
        if item == "p0-first":
            started.set()
            await release.wait()
        done.append(item)

    lanes: Lanes[str] = Lanes(worker)
    lanes.submit((TP("t", 0), "k"), "p0-first")
    lanes.submit((TP("t", 0), "k"), "p0-second")
    lanes.submit((TP("t", 0), 7), "p0-keyless-not-started")
    lanes.submit((TP("t", 1), "k"), "p1")
    await started.wait()
    dropped = lanes.drop_queued({TP("t", 0)})
    # The keyless lane's item had not started either (its task had not run yet) — both are dropped.
    assert set(dropped) >= {"p0-second"}
    assert lanes.running(TP("t", 0)) == ["p0-first"]
    release.set()
    assert await lanes.wait_scopes_idle({TP("t", 0)}, 1)
    await lanes.wait_idle(1)
    assert "p0-first" in done and "p1" in done
    assert "p0-second" not in done


async def test_cancel_stops_running_items_of_a_partition() -> None:
    cancelled: list[str] = []

    async def worker(item: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise

    lanes: Lanes[str] = Lanes(worker)
    lanes.submit((TP("t", 0), "a"), "x")
    lanes.submit((TP("t", 1), "a"), "y")
    await asyncio.sleep(0.01)
    assert not await lanes.wait_scopes_idle({TP("t", 0)}, 0.05)
    assert await lanes.cancel({TP("t", 0)}) == 1
    assert cancelled == ["x"]
    assert lanes.lane_count == 1
    await lanes.cancel()
    assert lanes.lane_count == 0
