"""Types that cross stage boundaries: source → decode → route → deliver → finish."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from connector.attentive.endpoints import Endpoint

Clock = Callable[[], float]
"""The time-of-day seam of every stage: seconds now. Each parameter says which clock it defaults to — wall
(``time.time``) where the time is compared with record timestamps or written to headers, monotonic
(``time.monotonic``) for intervals. Tests pass the event loop's clock (virtual time, tests/unit/engine_fakes.py)."""

Sleep = Callable[[float], Awaitable[None]]
"""The waiting seam (``asyncio.sleep``), paired with a :data:`Clock` on virtual time."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Kafka record as consumed, before decoding. ``timestamp_ms`` is the record's Kafka timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @property
    def record_id(self) -> str:
        """``topic/partition/offset``: sent as ``X-Record-Id`` and used in every log line about the record."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def size(self) -> int:
        """Approximate bytes held in memory, for backpressure."""
        return len(self.value or b"") + len(self.key or b"") + sum(len(k) + len(v) for k, v in self.headers)


@dataclass(frozen=True, slots=True)
class Call:
    """One Attentive request built from a record by a rule.

    ``record_id`` is ``topic/partition/offset`` or, when a record fans out to several calls,
    ``topic/partition/offset/n`` (n = 0, 1, … in rule order).
    """

    endpoint: Endpoint
    body: dict[str, Any]
    record_id: str
    rule: str


class OutcomeKind(enum.StrEnum):
    """How a record finished. Exactly one per record."""

    DELIVERED = "delivered"
    SKIPPED = "skipped"
    STALE = "stale"
    DEAD_LETTERED = "dead_lettered"


@dataclass(slots=True)
class RouteResult:
    """What routing made of one record.

    * ``calls`` non-empty: deliver them in order.
    * ``calls`` empty and ``skipped`` set: finished without a call (``"no_rule"`` or ``"stale"``).
    * ``error`` set: the record must be dead-lettered (decode error, a rule that cannot build a valid
      request, or an unmatched record when the config says so). No call is sent in that case: routing is
      all-or-nothing per record so a replay after a fix never half-repeats a fan-out.

    ``ordering_key`` is the lane key: the topic's ``key_field`` over the decoded record when configured (and
    not empty), else the Kafka key as UTF-8 (hex when it is not UTF-8), else ``None`` (keyless: no ordering).
    """

    calls: list[Call] = field(default_factory=list)
    skipped: str | None = None
    rule: str | None = None
    error: Exception | None = None
    ordering_key: str | None = None
