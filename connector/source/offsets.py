"""Offset tracking: which position of each partition may be committed.

A record is *taken* when it is handed to the engine and *finished* when it is delivered, skipped or its
dead-letter write is acknowledged. The committable position of a partition is the smallest offset taken
but not finished, or — when nothing is unfinished — the offset after the last one taken. Committing that
position can never skip an unfinished record, whatever order records finish in.

Pure data structures: no Kafka, no clock, no locks (the engine uses them from its event loop only).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

# Kafka brokers reject commit metadata above offset.metadata.max.bytes (default 4096); stay well below.
METADATA_LIMIT = 3000
_METADATA_PREFIX = "ac1:"


class TP(NamedTuple):
    """A topic partition."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}"


class Commit(NamedTuple):
    """A position to commit, with the finished offsets above it encoded in the commit metadata."""

    offset: int
    metadata: str = ""


def encode_done(base: int, done: Iterable[int]) -> str:
    """Encode the offsets at or above ``base`` that are already finished, for the commit metadata.

    A bitmap relative to ``base`` (bit i = offset base+i finished), zlib-compressed and base64-encoded: a
    mostly-finished range behind one slow record compresses to a few bytes. Returns "" when there is
    nothing to record or the encoding would not fit in :data:`METADATA_LIMIT` (then those records are
    simply delivered again after a restart — duplicates, never loss).
    """
    rel = sorted(o - base for o in done if o >= base)
    if not rel:
        return ""
    bits = bytearray((rel[-1] >> 3) + 1)
    for i in rel:
        bits[i >> 3] |= 1 << (i & 7)
    text = f"{_METADATA_PREFIX}{base}:{base64.b64encode(zlib.compress(bytes(bits), 9)).decode('ascii')}"
    return text if len(text) <= METADATA_LIMIT else ""


def decode_done(metadata: str | None, committed: int) -> set[int]:
    """The finished offsets recorded by :func:`encode_done` for a commit at ``committed``.

    Anything else (metadata written by another tool, an older commit's base, corruption) gives an empty
    set: the records are then processed again, which is always safe.
    """
    if not metadata or not metadata.startswith(_METADATA_PREFIX):
        return set()
    try:
        base_text, payload = metadata[len(_METADATA_PREFIX) :].split(":", 1)
        base = int(base_text)
        bits = zlib.decompress(base64.b64decode(payload, validate=True))
    except (ValueError, binascii.Error, zlib.error):
        return set()
    if base != committed:
        return set()
    return {base + (i << 3) + b for i, byte in enumerate(bits) if byte for b in range(8) if byte >> b & 1}


class PartitionOffsets:
    """The unfinished offsets of one partition for one assignment of it.

    Offsets must be taken in increasing order (as Kafka hands them out); finishing may happen in any order.
    A fresh object is made each time the partition is assigned, so a late ``finish`` from a previous
    assignment lands on an object nobody commits from any more.
    """

    __slots__ = ("_order", "_unfinished", "already_done", "confirmed", "next_offset", "revoked")

    def __init__(self, already_done: Iterable[int] = ()) -> None:
        # Offsets in the order taken; finished ones are popped lazily from the left.
        self._order: deque[int] = deque()
        self._unfinished: set[int] = set()
        self.next_offset: int | None = None
        """The offset after the last one taken, or None before the first."""
        self.confirmed: int = -1
        """The position the group holds as far as this member knows: its last commit the broker wrote (or
        where consumption started); -1 before either."""
        self.revoked: bool = False
        """Set when the partition is revoked or lost: nothing may start or commit from here on."""
        self.already_done: set[int] = set(already_done)
        """Offsets a previous owner finished above its committed position (from the commit metadata)."""

    def take(self, offset: int) -> bool:
        """Record that ``offset`` is now being worked on.

        Returns False (and changes nothing) for an offset at or below the last one taken: Kafka only hands
        those out again after a seek or an offset reset, and such a record is either still in progress or
        already finished, so working on it again would only duplicate it.
        """
        if self.next_offset is not None and offset < self.next_offset:
            return False
        if self.next_offset is None:
            # The consumer started here: the group's committed position (or the reset point). Committing it
            # again would say nothing new.
            self.confirmed = max(self.confirmed, offset)
        self._order.append(offset)
        self._unfinished.add(offset)
        self.next_offset = offset + 1
        return True

    def finish(self, offset: int) -> bool:
        """Record that ``offset`` is finished; False if it was not unfinished (already finished or unknown)."""
        if offset not in self._unfinished:
            return False
        self._unfinished.discard(offset)
        order = self._order
        while order and order[0] not in self._unfinished:
            order.popleft()
        return True

    @property
    def committable(self) -> int | None:
        """The position to commit (the next offset to consume after a restart), or None before any take."""
        if self._order:
            return self._order[0]
        return self.next_offset

    def finished_above(self) -> list[int]:
        """Finished offsets above the committable position (they must not be processed again)."""
        return [o for o in self._order if o not in self._unfinished]

    @property
    def finished_above_count(self) -> int:
        return len(self._order) - len(self._unfinished)

    def commit(self) -> Commit | None:
        """The position to commit with its metadata (the finished offsets above it), or None before any take."""
        pos = self.committable
        if pos is None:
            return None
        return Commit(pos, self.metadata())

    def metadata(self) -> str:
        """The commit metadata for the committable position: the finished offsets above it, encoded."""
        pos = self.committable
        if pos is None or not self.finished_above_count:
            return ""
        return encode_done(pos, self.finished_above())

    @property
    def unfinished(self) -> int:
        """How many offsets are taken and not finished."""
        return len(self._unfinished)

    def needs_commit(self) -> bool:
        """True when the committable position is ahead of what the broker confirmed."""
        pos = self.committable
        return pos is not None and pos > self.confirmed

    def confirm(self, position: int) -> None:
        """The broker wrote a commit of ``position``: the group holds it now, even if it is lower.

        Not the highest position acknowledged: answers arrive in the order the broker wrote the commits, and
        librdkafka can write an older commit after a newer one — a commit on the wire when the broker went down
        is deferred (transport error, NOT_COORDINATOR) and sent again once the coordinator is back, after newer
        ones (seen in the chaos test: 185 written, then the deferred 60), and COORDINATOR_LOAD_IN_PROGRESS
        retries back off longer the more they retried. Keeping the highest would call the partition committed
        while the group holds the older position, and the newer one would never be sent again (the group
        stays behind until a revoke or shutdown; tests/unit/test_commit_answer_order.py). Erring low costs one
        more commit; erring high leaves the group behind.
        """
        self.confirmed = position


class OffsetTracker:
    """The :class:`PartitionOffsets` of every partition currently assigned."""

    def __init__(self) -> None:
        self._parts: dict[TP, PartitionOffsets] = {}

    def assign(self, tp: TP, already_done: Iterable[int] = ()) -> PartitionOffsets:
        """Start tracking ``tp`` afresh (a previous object for it, if any, is marked revoked)."""
        old = self._parts.get(tp)
        if old is not None:
            old.revoked = True
        part = PartitionOffsets(already_done)
        self._parts[tp] = part
        return part

    def drop(self, tp: TP) -> PartitionOffsets | None:
        """Stop tracking ``tp`` (revoked or lost); its object is marked revoked and returned."""
        part = self._parts.pop(tp, None)
        if part is not None:
            part.revoked = True
        return part

    def __contains__(self, tp: object) -> bool:
        return tp in self._parts

    def committable(self, tps: list[TP] | None = None) -> dict[TP, Commit]:
        """Committable positions (with metadata) of ``tps`` (default: all) that have one."""
        out: dict[TP, Commit] = {}
        for tp, part in self._parts.items():
            if tps is not None and tp not in tps:
                continue
            c = part.commit()
            if c is not None:
                out[tp] = c
        return out

    @property
    def unfinished(self) -> int:
        return sum(p.unfinished for p in self._parts.values())
