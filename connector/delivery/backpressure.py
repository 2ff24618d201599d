"""Backpressure: bound what the engine holds, in records and in bytes.

Consumed-but-unfinished records count until they finish. When either bound is reached the engine pauses
consumption (the poll thread keeps polling, so the member is never evicted from its group); it resumes once
both have drained to ``resume_ratio`` of their bound. The gap between the two thresholds stops the
partitions from flapping between paused and resumed on every record.
"""

from __future__ import annotations


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
