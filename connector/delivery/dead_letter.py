"""The dead-letter producer: records that can never be delivered go to ``<topic>.dlq`` with their story.

The original key, value and headers are written unchanged, plus ``dlq.*`` headers saying where the record
came from and why it failed (see :func:`dead_letter_headers`). A record counts as finished only once the
broker acknowledged its dead-letter write (idempotent producer, ``acks=all``). If the write fails, it is
retried with backoff for as long as it takes — the record stays unfinished, so its partition's commit
cannot pass it — and every failure is logged at ERROR and counted (``dlq_write_errors``).

Delivery reports are served by ``producer.poll(0)`` from a task on the event loop, so the futures they
resolve live on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException

from connector import __version__
from connector.delivery.protocols import Backoff, KafkaProducer
from connector.errors import ApiError, ConnectorError, DeadLetterWriteError, Reason
from connector.formats import rfc3339
from connector.observability.logs import mask
from connector.observability.metrics import Metrics
from connector.types import SourceRecord

log = logging.getLogger(__name__)

HTTP_BODY_LIMIT = 2048
MESSAGE_LIMIT = 1024
DLQ_PREFIX = "dlq."


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record is dead-lettered."""

    error: BaseException
    rule: str | None
    attempts: int
    """Sends tried for the failing call (0 when the record failed before any call: decode, routing)."""
    first_failure: float
    last_failure: float
    """Unix seconds."""
    call_id: str | None = None
    """The failing call's ``X-Record-Id`` when a record fans out to several calls."""

    @property
    def reason(self) -> Reason:
        """The error's :class:`Reason`; ``internal_error`` for anything outside the tree (a bug)."""
        return self.error.reason if isinstance(self.error, ConnectorError) else Reason.INTERNAL_ERROR


def dead_letter_headers(
    record: SourceRecord, failure: Failure, *, version: str = __version__
) -> list[tuple[str, bytes]]:
    """The record's own headers (minus any earlier ``dlq.*`` ones) followed by this failure's ``dlq.*`` headers.

    A record that is dead-lettered again after a replay keeps its original coordinates: the replay rebuilds
    the record with the original topic/partition/offset/timestamp, so they are written again unchanged.
    """
    error = failure.error
    status = error.status if isinstance(error, ApiError) else None
    body = error.body if isinstance(error, ApiError) else ""
    message = mask(str(error))[:MESSAGE_LIMIT]
    added: list[tuple[str, str]] = [
        ("dlq.original.topic", record.topic),
        ("dlq.original.partition", str(record.partition)),
        ("dlq.original.offset", str(record.offset)),
        ("dlq.original.timestamp", "" if record.timestamp_ms is None else str(record.timestamp_ms)),
        ("dlq.rule", failure.rule or ""),
        ("dlq.error.class", type(error).__name__),
        ("dlq.error.reason", failure.reason),
        ("dlq.error.message", message),
        ("dlq.http.status", "" if status is None else str(status)),
        ("dlq.attempts", str(failure.attempts)),
        ("dlq.first.failure", rfc3339(failure.first_failure)),
        ("dlq.last.failure", rfc3339(failure.last_failure)),
        ("dlq.connector.version", version),
    ]
    if failure.call_id:
        added.append(("dlq.call", failure.call_id))
    kept = [(k, v) for k, v in record.headers if not k.startswith(DLQ_PREFIX)]
    out = kept + [(k, v.encode("utf-8")) for k, v in added]
    out.append(("dlq.http.body", body.encode("utf-8")[:HTTP_BODY_LIMIT]))
    return out


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as ``{name: text}`` (the last value wins), for reading ``dlq.*`` headers back."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}


class DeadLetterWriter:
    """Writes dead letters and waits for the broker's acknowledgement, retrying failed writes forever."""

    def __init__(
        self,
        producer: KafkaProducer,
        *,
        metrics: Metrics,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_interval_s: float = 0.01,
    ) -> None:
        self._producer = producer
        self._metrics = metrics
        self._backoff = backoff
        self._sleep = sleep
        self._poll_interval_s = poll_interval_s
        self._pending = 0
        self._poller: asyncio.Task[None] | None = None
        self.write_errors = 0
        """Failed write attempts so far (each is retried)."""

    async def write(self, record: SourceRecord, topic: str, failure: Failure) -> None:
        """Write ``record`` to ``topic``; returns once acknowledged. Never gives up (cancel to abandon)."""
        headers = dead_letter_headers(record, failure)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._produce_once(topic, record, headers)
            except DeadLetterWriteError as error:
                self.write_errors += 1
                self._metrics.dlq_write_errors.labels(record.topic).inc()
                delay = self._backoff.delay(attempt)
                log.error(
                    "DEAD-LETTER WRITE FAILED for %s to %s (attempt %d): %s. The record is kept and its "
                    "partition's commit is held until the write succeeds; retrying in %.1fs",
                    record.record_id,
                    topic,
                    attempt,
                    error,
                    delay,
                    extra={"record_id": record.record_id, "reason": error.reason},
                )
                await self._sleep(delay)
            else:
                self._metrics.dlq_records.labels(record.topic, failure.reason).inc()
                log.warning(
                    "dead-lettered %s to %s: %s (%s)",
                    record.record_id,
                    topic,
                    type(failure.error).__name__,
                    failure.reason,
                    extra={"record_id": record.record_id, "rule": failure.rule or ""},
                )
                return

    async def _produce_once(self, topic: str, record: SourceRecord, headers: list[tuple[str, bytes]]) -> None:
        """One produce, waited for; raises :class:`DeadLetterWriteError` when it is not acknowledged."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()

        def resolve(result: str | None) -> None:
            if not done.done():
                done.set_result(result)

        def on_delivery(err: Any, _msg: Any) -> None:
            # Normally served by poll(0) on the loop thread; flush() at close may serve it from another.
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits any more
                loop.call_soon_threadsafe(resolve, None if err is None else str(err))

        try:
            self._producer.produce(
                topic, value=record.value, key=record.key, headers=headers, on_delivery=on_delivery
            )
        except BufferError:
            raise DeadLetterWriteError("producer queue full") from None
        except (KafkaException, TypeError, ValueError) as exc:  # e.g. message too large, a bad argument
            raise DeadLetterWriteError(f"{type(exc).__name__}: {exc}") from None
        self._pending += 1
        self._ensure_polling()
        try:
            failed = await done
        finally:
            self._pending -= 1
        if failed is not None:
            raise DeadLetterWriteError(failed)

    def _ensure_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_reports(), name="dlq delivery reports"
            )

    async def _poll_reports(self) -> None:
        # Runs while writes wait for their delivery report; on_delivery fires inside poll(0), on this thread.
        while self._pending > 0:
            self._producer.poll(0)
            await asyncio.sleep(self._poll_interval_s)
        self._producer.poll(0)

    async def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued and stop; returns how many messages were still unacknowledged."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        remaining = await asyncio.to_thread(self._producer.flush, timeout_s)
        return int(remaining)
