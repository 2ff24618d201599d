"""Backpressure: bound what the engine holds, in records and in bytes.

Consumed-but-unfinished records count until they finish. When either bound is reached the engine pauses
consumption (the poll thread keeps polling, so the member is never evicted from its group); it resumes once
both have drained to ``resume_ratio`` of their bound. The gap between the two thresholds stops the
partitions from flapping between paused and resumed on every record.
"""

from __future__ import annotations

from typing import Any


class BufferBudget:
    """Counts held records and bytes; says when to pause and when to resume. Pure, no I/O."""

    def __init__(self, max_records: int, max_bytes: int, *, resume_ratio: float = 0.5) -> None:
        if not 0 < resume_ratio < 1:
            raise ValueError("resume_ratio must be between 0 and 1")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._resume_records = int(max_records * resume_ratio)
        self._resume_bytes = int(max_bytes * resume_ratio)
        self.records = 0
        self.bytes = 0
        self.full = False
        """True from the moment a bound is reached until the buffer drained below the resume thresholds."""

    def add(self, size: int) -> bool:
        """Count one more held record of ``size`` bytes. Returns True when this made the buffer full."""
        self.records += 1
        self.bytes += size
        if not self.full and (self.records >= self.max_records or self.bytes >= self.max_bytes):
            self.full = True
            return True
        return False

    def remove(self, size: int) -> bool:
        """A held record finished (or was dropped). Returns True when this drained a full buffer enough."""
        self.records = max(0, self.records - 1)
        self.bytes = max(0, self.bytes - size)
        if self.full and self.records <= self._resume_records and self.bytes <= self._resume_bytes:
            self.full = False
            return True
        return False


class FairShares:
    """Per-partition shares of the buffer, so one busy (or slow) topic cannot fill it and starve the others.

    Each assigned partition is guaranteed ``reserve_ratio / n`` of both bounds (``n`` assigned partitions);
    the rest is a pool any partition may borrow from. When the pool is spent, the partitions holding more
    than their guaranteed share are *throttled* (paused) while the others keep consuming up to theirs, so
    every partition keeps records in flight. The sum over partitions of ``max(held, share)`` never exceeds the
    bounds by more than a poll batch, so the total stays bounded. The pool is open again once its use has
    drained to ``resume_ratio``; a throttled partition also resumes once it holds ``resume_ratio`` of its share.
    Pure, no I/O; :meth:`throttled` is O(partitions).
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
        self._held: dict[Any, list[int]] = {}  # partition -> [records, bytes]
        self._throttled: frozenset[Any] = frozenset()
        self.pool_full = False

    def assign(self, tp: Any) -> None:
        self._held.setdefault(tp, [0, 0])

    def drop(self, tp: Any) -> None:
        self._held.pop(tp, None)

    def add(self, tp: Any, size: int) -> None:
        held = self._held.get(tp)
        if held is not None:
            held[0] += 1
            held[1] += size

    def remove(self, tp: Any, size: int) -> None:
        held = self._held.get(tp)
        if held is not None:
            held[0] = max(0, held[0] - 1)
            held[1] = max(0, held[1] - size)

    def held(self, tp: Any) -> int:
        return self._held.get(tp, [0, 0])[0]

    def shares(self) -> tuple[int, int]:
        """(records, bytes) guaranteed to each assigned partition."""
        n = max(1, len(self._held))
        return (
            max(1, int(self.max_records * self._reserve / n)),
            max(1, int(self.max_bytes * self._reserve / n)),
        )

    def throttled(self) -> frozenset[Any]:
        """The partitions to pause now (empty while the shared pool has room)."""
        if not self._held:
            self.pool_full = False
            self._throttled = frozenset()
            return self._throttled
        share_r, share_b = self.shares()
        n = len(self._held)
        pool_r = max(0, self.max_records - n * share_r)
        pool_b = max(0, self.max_bytes - n * share_b)
        borrowed_r = sum(max(0, r - share_r) for r, _ in self._held.values())
        borrowed_b = sum(max(0, b - share_b) for _, b in self._held.values())
        if borrowed_r >= pool_r or borrowed_b >= pool_b:
            self.pool_full = True
        elif self.pool_full and borrowed_r <= pool_r * self._resume and borrowed_b <= pool_b * self._resume:
            self.pool_full = False
        if not self.pool_full:
            self._throttled = frozenset()
            return self._throttled
        low_r, low_b = share_r * self._resume, share_b * self._resume
        self._throttled = frozenset(
            tp
            for tp, (r, b) in self._held.items()
            if r >= share_r or b >= share_b or (tp in self._throttled and (r > low_r or b > low_b))
        )
        return self._throttled
