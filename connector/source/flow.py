"""Flow control between the pipeline and the poll thread: typed commands, and who holds what back.

The poll thread (:class:`connector.source.poller.Poller`) is the only owner of the consumer's state —
assignment, which partitions librdkafka has paused, positions. The pipeline never keeps a copy of it: it only
*states what it wants* with a :class:`Hold` per reason ("hold back these partitions because …", or every
partition, or none), and the thread works out the pause/resume calls from the union of the current holds and
its own assignment. A reason's newest :class:`Hold` replaces the previous one, so commands are idempotent
and cannot drift.

The buffer bound is enforced on the same thread: before each poll it asks the engine how much room is left
(:class:`BufferRoom`), fetches no more than that, waits while there is none, and holds every partition back
(:attr:`HoldReason.BUFFER_FULL`) once the buffer has stayed full for a while.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from connector.source.offsets import TP, Commit

__all__ = [
    "BufferRoom",
    "Command",
    "CommitOffsets",
    "Hold",
    "HoldReason",
    "Holds",
    "Stop",
]


class HoldReason(enum.StrEnum):
    """Why partitions are held back (paused). Used in logs and the ``/readyz`` answer."""

    AUTH = "auth"
    """Attentive refuses the API key: consume nothing until it is accepted."""
    SHUTDOWN = "shutdown"
    BUFFER_FULL = "buffer_full"
    """The engine has held ``max_buffered_records`` / ``max_buffered_bytes`` for ``full_wait_s``: set by the
    poll thread itself."""
    OVER_SHARE = "over_share"
    """These partitions hold more than their share of a full buffer: let the others catch up."""
    ROUTING_HELD = "routing_held"
    """These partitions' routing waits for the Schema Registry: fetching more of them only fills memory."""
    END_OF_REPLAY = "end_of_replay"
    """A replay read up to the end offsets it saw at start."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold back ``partitions`` for ``reason`` (``None``: every assigned partition; empty: release).

    Replaces the reason's previous hold.
    """

    reason: HoldReason
    partitions: frozenset[TP] | None

    @classmethod
    def everything(cls, reason: HoldReason, on: bool = True) -> Hold:
        return cls(reason, None if on else frozenset())


@dataclass(frozen=True, slots=True)
class CommitOffsets:
    """Commit these positions asynchronously (the result comes back through ``EngineLink.committed``)."""

    offsets: Mapping[TP, Commit]


@dataclass(frozen=True, slots=True)
class Stop:
    """Commit ``final`` synchronously, close the consumer and end the thread."""

    final: Mapping[TP, Commit]


Command = Hold | CommitOffsets | Stop


class BufferRoom(Protocol):
    """How much more the engine may be handed (read from the poll thread: plain int reads)."""

    max_records: int
    max_bytes: int

    def room(self) -> tuple[int, int]:
        """(records, bytes) the engine can still take; negative when over."""
        ...

    def wake_when_free(self, records: int, bytes_: int, wake: Callable[[], None]) -> None:
        """Call ``wake()`` (thread-safe, idempotent) once that much is free: the poll thread waits on it
        while the buffer is full instead of polling the room."""
        ...


class Holds:
    """The current hold of each reason, and the set of partitions they hold back together. Pure.

    Owned by the poll thread. :meth:`held` is O(partitions held), computed only when a hold changes.
    """

    def __init__(self) -> None:
        self._by_reason: dict[HoldReason, frozenset[TP] | None] = {}

    def apply(self, hold: Hold) -> bool:
        """Apply ``hold``; True when it changed anything."""
        before = self._by_reason.get(hold.reason, frozenset())
        if hold.partitions is not None and not hold.partitions:
            self._by_reason.pop(hold.reason, None)
        else:
            self._by_reason[hold.reason] = hold.partitions
        return before != self._by_reason.get(hold.reason, frozenset())

    def active(self, reason: HoldReason) -> bool:
        return reason in self._by_reason

    def everything(self) -> list[HoldReason]:
        """The reasons that hold back every partition."""
        return sorted(r for r, tps in self._by_reason.items() if tps is None)

    def reasons(self) -> list[HoldReason]:
        return sorted(self._by_reason)

    def held(self, assignment: Iterable[TP]) -> set[TP]:
        """The assigned partitions that must be paused now."""
        assigned = set(assignment)
        if self.everything():
            return assigned
        out: set[TP] = set()
        for tps in self._by_reason.values():
            if tps is not None:
                out |= tps
        return out & assigned
