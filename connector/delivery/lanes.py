"""Key-ordered lanes: same key one at a time in arrival order, different keys in parallel.

A lane is a FIFO of items sharing a key, served by one asyncio task that exists only while the lane has
work. Lanes are scoped (the key is ``(scope, ordering key)``), and the engine's scope is one *assignment* of a
partition: offset order is only defined within a partition, a revoked partition's lanes can be drained or
cancelled without touching the others, and a partition lost and assigned again at once gets new lanes, so
cancelling the old ones can never take the new assignment's records with them. Records without a key get a
lane of their own (their offset), so they run freely in parallel.

The bound on concurrent HTTP requests is not here but in :class:`connector.delivery.deliverer.CallDeliverer`,
so a lane waiting for a retry or a gate costs no request slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connector.asyncutil import wait_event

log = logging.getLogger(__name__)

T = TypeVar("T")

LaneKey = tuple[Hashable, str | bytes | int]
"""``(scope, ordering key)``; the key is a str (record field), bytes (Kafka key) or an int offset."""


@dataclass(eq=False)
class _Lane(Generic[T]):
    queue: deque[T] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: T | None = None


class Lanes(Generic[T]):
    """Runs ``worker(item)`` for each submitted item, one at a time per key, in submission order.

    ``worker`` must handle its own errors; an exception escaping it is logged and the lane moves on (the
    item is then left to the caller's bookkeeping, e.g. it stays unfinished and blocks its commit).
    """

    def __init__(self, worker: Callable[[T], Awaitable[None]]) -> None:
        self._worker = worker
        self._lanes: dict[LaneKey, _Lane[T]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Items queued or running."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    @property
    def lane_count(self) -> int:
        return len(self._lanes)

    def submit(self, key: LaneKey, item: T) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.queue.append(item)
        self._idle.clear()
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(self._run(key, lane), name=f"lane {key[0]}")

    async def _run(self, key: LaneKey, lane: _Lane[T]) -> None:
        try:
            while lane.queue:
                item = lane.queue[0]
                lane.current = item
                try:
                    await self._worker(item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("lane worker failed; moving on", extra={"lane": str(key[0])})
                lane.current = None
                if lane.queue and lane.queue[0] is item:
                    lane.queue.popleft()
        finally:
            lane.current = None
            lane.task = None
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            if not self._lanes:
                self._idle.set()

    def running(self, scope: Hashable | None = None) -> list[T]:
        """Items being worked on now (of one scope, or all)."""
        return [
            lane.current
            for key, lane in self._lanes.items()
            if lane.current is not None and (scope is None or key[0] == scope)
        ]

    def drop_queued(self, scopes: Collection[Hashable]) -> list[T]:
        """Remove the items of ``scopes`` that have not started; running ones are left to finish or be
        cancelled."""
        dropped: list[T] = []
        for key, lane in list(self._lanes.items()):
            if key[0] not in scopes:
                continue
            current = lane.current
            dropped.extend(i for i in lane.queue if i is not current)
            lane.queue = deque([current]) if current is not None else deque()
        return dropped

    async def wait_scopes_idle(self, scopes: Collection[Hashable], timeout_s: float) -> bool:
        """Wait until no lane of ``scopes`` has work, up to ``timeout_s`` seconds; True if they went idle."""
        tasks = [lane.task for key, lane in self._lanes.items() if key[0] in scopes and lane.task is not None]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        return not pending

    async def cancel(self, scopes: Collection[Hashable] | None = None) -> int:
        """Cancel the lanes of ``scopes`` (default: all) and wait for them to stop; returns how many."""
        tasks = [
            lane.task
            for key, lane in self._lanes.items()
            if lane.task is not None and (scopes is None or key[0] in scopes)
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def cancel_where(self, scopes: Collection[Hashable], predicate: Callable[[T], bool]) -> int:
        """Cancel the lanes of ``scopes`` whose running item satisfies ``predicate``; returns how many."""
        tasks = [
            lane.task
            for key, lane in self._lanes.items()
            if key[0] in scopes
            and lane.task is not None
            and lane.current is not None
            and predicate(lane.current)
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every lane is empty, up to ``timeout_s`` seconds; True if they all went idle."""
        return await wait_event(self._idle, timeout_s)
