"""The group's committed offset is the commit the broker wrote *last*, not the highest one it acknowledged.

Root cause of the chaos test's "commits stuck after a broker restart" (tests/integration/test_chaos.py). Seen
there with commit logging (CHAOS_LOG_LEVEL=DEBUG): a replica's commit of loyalty/5 at 60 was on the wire when
the broker was killed; librdkafka deferred it (transport error) until the coordinator was back, and wrote it
*after* the engine's newer commit of 185. Both were acknowledged — 185 first, then 60 — and the engine, which
kept the highest acknowledged position, believed 185 committed and never sent it again: the group stayed 125
records behind until shutdown committed synchronously (lag that is not there; a crash resends all of it).
COORDINATOR_LOAD_IN_PROGRESS retries, which back off longer the more they retried, reorder commits the same way.

Here the real poll thread and the real engine run against a fake consumer that holds the asynchronous commits,
then writes and answers them newest first: the newest position must end up written.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import TopicPartition

from connector.source.kafka import Inbound
from connector.source.poller import Poller, PollSettings
from connector.source.protocols import KafkaMessage
from tests.unit.engine_fakes import Rigs, eventually, rec
from tests.unit.test_engine_poller import P0, FakeConsumer, FakeMessage


class RetryReorderingConsumer(FakeConsumer):
    """Holds asynchronous commits until ``release`` is set, then writes and answers the held ones newest first
    (the older requests were retried later); after that every commit is written and answered in order.
    ``broker`` is what the group's committed offsets are now; ``written`` every offset written, in write order
    (the test reads the history: the older write is overwritten again within one commit interval, a window a
    poll on a loaded machine can miss)."""

    def __init__(self, steps: list[Any]) -> None:
        super().__init__(steps)
        self.release = threading.Event()
        self.held: list[list[TopicPartition]] = []
        self.broker: dict[tuple[str, int], int] = {}
        self.written: list[int] = []
        self._reordered = False
        self._lock = threading.Lock()

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        super().commit(offsets=offsets, asynchronous=asynchronous)
        request = [TopicPartition(p.topic, p.partition, p.offset) for p in offsets]
        if not asynchronous:
            self._write(request)
            return
        with self._lock:
            self.held.append(request)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.release.is_set():
            with self._lock:
                answers, self.held = (self.held if self._reordered else self.held[::-1]), []
                self._reordered = True
            for request in answers:
                self._write(request)
                self.conf["on_commit"](None, request)
        return super().consume(num_messages, timeout)

    def _write(self, request: list[TopicPartition]) -> None:
        with self._lock:
            for p in request:
                self.broker[(p.topic, p.partition)] = p.offset
                self.written.append(p.offset)

    def rewritten_after(self, newer: int, older: int) -> bool:
        """Whether ``newer`` was written, then ``older``, then ``newer`` again (the engine's repair)."""
        with self._lock:
            written = list(self.written)
        if newer not in written:
            return False
        first_newer = written.index(newer)
        if older not in written[first_newer:]:
            return False
        last_older = len(written) - 1 - written[::-1].index(older)
        return newer in written[last_older:]

    def reordered(self, newer: int, older: int) -> bool:
        """Whether ``older`` was written after ``newer`` (the retried request landed last)."""
        with self._lock:
            written = list(self.written)
        return newer in written and older in written[written.index(newer) :]

    def requested(self, offset: int) -> bool:
        with self._lock:
            return any(p.offset == offset for request in self.held for p in request)


def _inbound(msg: KafkaMessage) -> Inbound:
    offset = msg.offset()
    assert offset is not None
    return rec(offset, key=f"k{offset}".encode(), timestamp_ms=1)


async def test_an_older_commit_written_after_a_newer_one_is_followed_by_the_newer_one_again(
    make_rig: Rigs,
) -> None:
    first_done = threading.Event()
    consumer = RetryReorderingConsumer(
        [
            ("assign", [P0]),
            [FakeMessage("orders", 0, i) for i in range(5)],
            first_done,
            [FakeMessage("orders", 0, i) for i in range(5, 10)],
        ]
    )
    rig = await make_rig()  # commit_interval_s 0.05
    poller = Poller(
        lambda conf: _configured(consumer, conf),
        {"group.id": "g"},
        link=rig.engine,
        loop=asyncio.get_running_loop(),
        topics=["orders"],
        settings=PollSettings(timeout_s=0.01, revoke_timeout_s=0.5, metadata_timeout_s=1),
        metrics=rig.metrics,
        transform=_inbound,
    )
    rig.engine.bind(poller)
    poller.start()
    try:
        await eventually(lambda: consumer.requested(5))  # offsets 0-4 finished: position 5 asked for
        first_done.set()
        await eventually(lambda: consumer.requested(10))  # then 5-9: position 10 asked for
        consumer.release.set()  # the coordinator is back: 10 is written first, the retried 5 after it
        await eventually(lambda: consumer.reordered(10, 5))
        # The engine must see that 5 is what the broker holds now, and commit 10 again.
        await eventually(lambda: consumer.rewritten_after(10, 5))
        assert consumer.broker.get(("orders", 0)) == 10
    finally:
        poller.stop()
        await poller.wait()


def _configured(consumer: RetryReorderingConsumer, conf: dict[str, Any]) -> RetryReorderingConsumer:
    consumer.conf = conf
    return consumer
