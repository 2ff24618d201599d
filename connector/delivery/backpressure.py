"""Backpressure: what the engine holds, in records and bytes, in total and per partition.

Consumed-but-unfinished records count until they finish. :class:`BufferBudget` is the total: the poll thread
reads its :meth:`~BufferBudget.room` before every poll and never hands over more than that (see
:mod:`connector.source.poller`), so the bounds hold whatever the topic mix or drain speed.

:class:`FairShares` keeps one busy (or slow) partition from filling the whole buffer and starving the others.
Both are pure counters (no I/O, no locks): written on the event loop, read as plain ints elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BufferBudget", "FairShares"]

K = TypeVar("K", bound=Hashable)


class BufferBudget:
    """The records and bytes the engine holds, against its bounds.

    Example::

        budget = BufferBudget(max_records=5000, max_bytes=64 << 20)
        budget.add(512)        # a record was taken
        budget.room()          # (4999, 67108352): what the poll thread may still hand over
        budget.remove(512)     # it finished (or was dropped on revoke)
    """

    def __init__(self, max_records: int, max_bytes: int) -> None:
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self.peak = 0
        """The most records held at once (for tests and the benchmark)."""
        self._wake: tuple[int, int, Callable[[], None]] | None = None

    def add(self, size: int) -> None:
        """Count one more held record of ``size`` bytes."""
        self.records += 1
        self.bytes += size
        self.peak = max(self.peak, self.records)

    def remove(self, size: int) -> None:
        """A held record finished or was dropped."""
        if self.records <= 0 or self.bytes < size:
            raise ValueError("buffer accounting: removing more than was added")
        self.records -= 1
        self.bytes -= size
        if self._wake is not None:
            self._check_wake()

    def room(self) -> tuple[int, int]:
        """(records, bytes) that may still be taken; safe to read from another thread."""
        return self.max_records - self.records, self.max_bytes - self.bytes

    def wake_when_free(self, records: int, bytes_: int, wake: Callable[[], None]) -> None:
        """Call ``wake()`` once at least ``records`` and ``bytes_`` are free (now, or from the thread that
        frees them); replaces an earlier request. ``wake`` must be thread-safe and idempotent: both threads
        may call it for the same request."""
        self._wake = (records, bytes_, wake)
        self._check_wake()

    def _check_wake(self) -> None:
        wake = self._wake
        if (
            wake is not None
            and self.max_records - self.records >= wake[0]
            and self.max_bytes - self.bytes >= wake[1]
        ):
            self._wake = None
            wake[2]()


class FairShares(Generic[K]):
    """Per-partition shares of the buffer, so one busy (or slow) partition cannot fill it and starve the others.

    Each assigned partition is guaranteed ``reserve_ratio / n`` of both bounds (``n`` assigned partitions);
    the rest is a pool any partition may borrow from. When the pool is spent, the partitions holding their
    guaranteed share or more are *throttled* (held back) while the others keep consuming up to theirs, so
    every partition keeps records in flight. The pool opens again once its use has drained to
    ``resume_ratio``; a throttled partition is also let go once it holds ``resume_ratio`` of its share.

    Every :meth:`add` / :meth:`remove` is O(1): the borrowed totals are kept incrementally and only the
    partition that changed is re-examined; the whole set is recomputed only when the pool fills or opens, or
    the assignment changes. :attr:`changed` says the throttled set moved since :meth:`take_changes`.
    """

    def __init__(
        self, max_records: int, max_bytes: int, *, reserve_ratio: float = 0.5, resume_ratio: float = 0.5
    ) -> None:
        if not 0 < reserve_ratio < 1 or not 0 < resume_ratio < 1:
            raise ValueError("reserve_ratio and resume_ratio must be between 0 and 1")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._reserve = reserve_ratio
        self._resume = resume_ratio
        self._held: dict[K, list[int]] = {}  # partition -> [records, bytes]
        self._throttled: set[K] = set()
        self._share = (max_records, max_bytes)
        self._pool = (0, 0)
        self._borrowed = [0, 0]
        self.pool_full = False
        self.changed = False

    # -- assignment (O(n)) ------------------------------------------------------------------------------

    def assign(self, tp: K) -> None:
        self._held.setdefault(tp, [0, 0])
        self._reshape()

    def drop(self, tp: K) -> None:
        if self._held.pop(tp, None) is not None:
            self._throttled.discard(tp)
            self._reshape()

    def _reshape(self) -> None:
        n = max(1, len(self._held))
        share_r = max(1, int(self.max_records * self._reserve / n))
        share_b = max(1, int(self.max_bytes * self._reserve / n))
        self._share = (share_r, share_b)
        self._pool = (max(0, self.max_records - n * share_r), max(0, self.max_bytes - n * share_b))
        self._borrowed = [
            sum(max(0, r - share_r) for r, _ in self._held.values()),
            sum(max(0, b - share_b) for _, b in self._held.values()),
        ]
        self._update_pool(force=True)

    # -- records (O(1)) ---------------------------------------------------------------------------------

    def add(self, tp: K, size: int) -> None:
        held = self._held.get(tp)
        if held is None:
            return
        self._move(tp, held, 1, size)

    def remove(self, tp: K, size: int) -> None:
        held = self._held.get(tp)
        if held is None:
            return
        self._move(tp, held, -1, -min(size, held[1]))

    def _move(self, tp: K, held: list[int], records: int, size: int) -> None:
        share_r, share_b = self._share
        r0, b0 = held
        r1, b1 = max(0, r0 + records), b0 + size
        held[0], held[1] = r1, b1
        self._borrowed[0] += max(0, r1 - share_r) - max(0, r0 - share_r)
        self._borrowed[1] += max(0, b1 - share_b) - max(0, b0 - share_b)
        if not self._update_pool() and self.pool_full:
            self._judge(tp, held)

    def _update_pool(self, *, force: bool = False) -> bool:
        """Open or close the pool on its thresholds; True when the whole throttled set was recomputed."""
        pool_r, pool_b = self._pool
        borrowed_r, borrowed_b = self._borrowed
        was = self.pool_full
        if not was and (borrowed_r >= pool_r or borrowed_b >= pool_b):
            self.pool_full = True
        elif was and borrowed_r <= pool_r * self._resume and borrowed_b <= pool_b * self._resume:
            self.pool_full = False
        if self.pool_full == was and not force:
            return False
        before = set(self._throttled)
        if not self.pool_full:
            self._throttled.clear()
        else:
            for tp, held in self._held.items():
                self._judge(tp, held, track=False)
        self.changed = self.changed or before != self._throttled
        return True

    def _judge(self, tp: K, held: list[int], *, track: bool = True) -> None:
        share_r, share_b = self._share
        r, b = held
        was = tp in self._throttled
        low_r, low_b = share_r * self._resume, share_b * self._resume
        now = r >= share_r or b >= share_b or (was and (r > low_r or b > low_b))
        if now == was:
            return
        if now:
            self._throttled.add(tp)
        else:
            self._throttled.discard(tp)
        if track:
            self.changed = True

    # -- reading ----------------------------------------------------------------------------------------

    def held(self, tp: K) -> int:
        held = self._held.get(tp)
        return held[0] if held is not None else 0

    def shares(self) -> tuple[int, int]:
        """(records, bytes) guaranteed to each assigned partition."""
        return self._share

    def throttled(self) -> frozenset[K]:
        """The partitions to hold back now (empty while the shared pool has room)."""
        return frozenset(self._throttled)

    def take_changes(self) -> frozenset[K] | None:
        """The throttled set if it changed since the last call, else None."""
        if not self.changed:
            return None
        self.changed = False
        return frozenset(self._throttled)
