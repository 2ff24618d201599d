"""The delivery engine with fake seams: outcomes, ordering, commits, dead letters, rebalance and shutdown."""

from __future__ import annotations

import asyncio
import random

import pytest

from connector.errors import (
    ApiPermanentError,
    DecodeError,
    InvalidPhoneError,
    Reason,
    RegistryUnavailableError,
)
from connector.source.offsets import TP, Commit, decode_done
from connector.types import RouteResult, SourceRecord
from tests.unit.engine_fakes import FakeSender, Rig, Rigs, delivery_settings, eventually, rec, sample

# Virtual time (looptime): sleeps, timeouts, backoff and circuit cool-downs take no real time.
pytestmark = pytest.mark.looptime

T0 = TP("orders", 0)


async def settle(rig: Rig, timeout: float = 3.0) -> None:
    assert await rig.engine.wait_idle(timeout), rig.engine.stats()


async def test_records_are_delivered_counted_and_committed(make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, key=f"k{i}".encode(), timestamp_ms=1) for i in range(5)])
    await settle(rig)
    assert sorted(rig.sender.delivered) == [f"orders/0/{i}" for i in range(5)]
    assert rig.engine.stats() == {
        "consumed": 5,
        "delivered": 5,
        "skipped": 0,
        "stale": 0,
        "dead_lettered": 0,
        "filtered": 0,
        "pending": 0,
    }
    assert (
        sample(rig.metrics, rig.metrics.records_processed, topic="orders", rule="r1", outcome="delivered")
        == 5
    )
    assert sample(rig.metrics, rig.metrics.records_consumed, topic="orders") == 5
    await eventually(lambda: rig.source.last_commit(T0) == 5)


async def test_same_key_in_offset_order_other_keys_in_parallel_within_max_in_flight(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.005)
    rig = await make_rig(settings=delivery_settings(max_in_flight=4), sender=sender)
    rig.engine.assigned([T0])
    rnd = random.Random(7)
    batch = [rec(i, key=f"k{rnd.randrange(6)}".encode()) for i in range(60)]
    rig.engine.accept(batch)
    await settle(rig)
    order = [int(r.split("/")[2]) for r in sender.delivered]
    for key in {b.record.key for b in batch if b.record}:
        offsets = [b.offset for b in batch if b.record and b.record.key == key]
        assert [o for o in order if o in offsets] == offsets  # per key: offset order
    assert 1 < sender.max_in_flight <= 4


async def test_ordering_key_from_the_rule_overrides_the_kafka_key(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.003)
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    # Different Kafka keys, same customer: must go one at a time in offset order.
    rig.engine.accept([rec(i, key=f"order-{i}".encode(), value={"key": "cust-1"}) for i in range(10)])
    await settle(rig)
    assert sender.delivered == [f"orders/0/{i}" for i in range(10)]
    assert sender.max_in_flight == 1


async def test_skipped_and_stale_records_finish_without_calls(make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, value={"skip": "no_rule"}), rec(1, value={"skip": "stale"}), rec(2)])
    await settle(rig)
    s = rig.engine.stats()
    assert (s["skipped"], s["stale"], s["delivered"]) == (1, 1, 1)
    assert (
        sample(rig.metrics, rig.metrics.records_processed, topic="orders", rule="none", outcome="skipped")
        == 1
    )
    assert sample(rig.metrics, rig.metrics.records_processed, topic="orders", rule="r1", outcome="stale") == 1


async def test_permanent_api_error_is_dead_lettered_with_headers_and_later_records_flow(
    make_rig: Rigs,
) -> None:
    sender = FakeSender()
    sender.script["orders/0/1"] = [
        ApiPermanentError(
            "400 Bad Request: user.phone", endpoint="custom_event", status=400, body='{"e":"phone"}'
        )
    ]
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(i, timestamp_ms=1_700_000_000_000) for i in range(4)])  # all the same key
    await settle(rig)
    assert sender.delivered == ["orders/0/0", "orders/0/2", "orders/0/3"]
    [dl] = rig.producer.written
    assert dl["topic"] == "orders.dlq"
    assert dl["key"] == b"k"
    h = dl["headers"]
    assert h["trace"] == b"abc"  # original headers kept
    assert h["dlq.original.topic"] == b"orders"
    assert h["dlq.original.partition"] == b"0"
    assert h["dlq.original.offset"] == b"1"
    assert h["dlq.original.timestamp"] == b"1700000000000"
    assert h["dlq.rule"] == b"r1"
    assert h["dlq.error.class"] == b"ApiPermanentError"
    assert h["dlq.error.reason"] == b"rejected"
    assert h["dlq.http.status"] == b"400"
    assert h["dlq.http.body"] == b'{"e":"phone"}'
    assert h["dlq.attempts"] == b"1"
    assert h["dlq.first.failure"].endswith(b"Z")
    assert h["dlq.connector.version"]
    assert sample(rig.metrics, rig.metrics.dlq_records, topic="orders", reason="rejected") == 1
    await eventually(lambda: rig.source.last_commit(T0) == 4)


async def test_routing_errors_and_decode_errors_are_dead_lettered_without_calls(make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.assigned([T0])
    rig.router.errors["orders/0/0"] = DecodeError("not Avro", reason=Reason.NOT_AVRO)
    rig.router.errors["orders/0/1"] = InvalidPhoneError("phone +1555***1234 is not valid", rule="r1")
    rig.engine.accept([rec(0), rec(1), rec(2)])
    await settle(rig)
    assert rig.sender.delivered == ["orders/0/2"]
    by_offset = {w["headers"]["dlq.original.offset"]: w["headers"] for w in rig.producer.written}
    assert by_offset[b"0"]["dlq.error.class"] == b"DecodeError"
    assert by_offset[b"0"]["dlq.error.reason"] == b"not_avro"
    assert by_offset[b"0"]["dlq.attempts"] == b"0"
    assert by_offset[b"1"]["dlq.error.reason"] == b"invalid_phone"
    assert sample(rig.metrics, rig.metrics.decode_errors, topic="orders", reason="not_avro") == 1


async def test_fan_out_failure_names_the_failing_call(make_rig: Rigs) -> None:
    sender = FakeSender()
    sender.script["orders/0/0/1"] = [ApiPermanentError("422", endpoint="custom_event", status=422)]
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, value={"calls": 3})])
    await settle(rig)
    assert sender.delivered == ["orders/0/0/0"]  # calls after the failing one are not sent
    [dl] = rig.producer.written
    assert dl["headers"]["dlq.call"] == b"orders/0/0/1"


async def test_unexpected_exception_from_the_router_dead_letters_the_record(make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.assigned([T0])
    rig.router.raise_first["orders/0/0"] = [KeyError("bug")]
    rig.engine.accept([rec(0), rec(1)])
    await settle(rig)
    assert rig.producer.written[0]["headers"]["dlq.error.class"] == b"KeyError"
    assert rig.sender.delivered == ["orders/0/1"]


async def test_registry_outage_holds_the_partition_in_order_and_loses_nothing(make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.assigned([T0, TP("orders", 1)])
    rig.router.raise_first["orders/0/1"] = [RegistryUnavailableError("registry down")] * 3
    rig.engine.accept([rec(i) for i in range(4)] + [rec(0, partition=1)])
    await settle(rig)
    assert sorted(rig.router.routed) == sorted(
        ["orders/0/0", "orders/0/1", "orders/0/2", "orders/0/3", "orders/1/0"]
    )
    # Nothing behind the held record overtook it on its partition.
    p0 = [r for r in rig.router.routed if r.startswith("orders/0/")]
    assert p0 == ["orders/0/0", "orders/0/1", "orders/0/2", "orders/0/3"]
    assert rig.engine.stats()["delivered"] == 5
    assert rig.producer.written == []


async def test_dead_letter_write_failure_stalls_the_record_and_its_commit_then_recovers(
    caplog: pytest.LogCaptureFixture, make_rig: Rigs
) -> None:
    sender = FakeSender()
    sender.script["orders/0/0"] = [ApiPermanentError("400", endpoint="custom_event", status=400)]
    rig = await make_rig(sender=sender)
    rig.producer.fail_next = 3
    rig.producer.raise_next = [BufferError("queue full")]
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, key=b"a"), rec(1, key=b"b")])
    await settle(rig)
    assert rig.producer.attempts == 5  # 1 raised + 3 failed reports + 1 acknowledged
    assert len(rig.producer.written) == 1
    assert rig.dead_letters.write_errors == 4
    assert sample(rig.metrics, rig.metrics.dlq_write_errors, topic="orders") == 4
    assert "DEAD-LETTER WRITE FAILED" in caplog.text
    assert rig.engine.stats()["dead_lettered"] == 1
    await eventually(lambda: rig.source.last_commit(T0) == 2)


async def test_commit_never_passes_a_record_whose_dead_letter_is_unacknowledged(make_rig: Rigs) -> None:
    sender = FakeSender()
    sender.script["orders/0/0"] = [ApiPermanentError("400", endpoint="custom_event", status=400)]
    rig = await make_rig(sender=sender)
    rig.producer.fail_next = 10**9  # the DLQ is down for good
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, key=b"a"), rec(1, key=b"b"), rec(2, key=b"c")])
    await eventually(lambda: rig.engine.stats()["delivered"] == 2)
    assert rig.engine.stats()["pending"] == 1
    assert all(c.get(T0, 0) == 0 for c in rig.source.commits)  # position 0: the stuck record comes back
    [pos] = rig.engine.positions().values()
    assert pos.offset == 0
    assert decode_done(pos.metadata, 0) == {1, 2}  # finished above it: skipped after a restart, not redone


async def test_subscribe_delivery_triggers_an_early_commit(make_rig: Rigs) -> None:
    rig = await make_rig(settings=delivery_settings(commit_interval_s=30))
    rig.engine.assigned([T0])
    await asyncio.sleep(0.1)  # the periodic commit is 30 s away
    rig.engine.accept([rec(0, value={"endpoint": "subscribe"})])
    await settle(rig)
    await eventually(lambda: rig.source.last_commit(T0) == 1)


async def test_release_drains_in_flight_drops_queued_and_returns_the_safe_position(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.05)
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0, TP("orders", 1)])
    rig.engine.accept([rec(i) for i in range(5)] + [rec(0, partition=1)])  # p0: one lane, 5 deep
    await asyncio.sleep(0.02)  # p0's first record is in flight
    positions = await rig.engine.release([T0])
    assert positions == {T0: Commit(1)}  # the in-flight one finished; the 4 queued ones were not started
    assert sender.delivered.count("orders/0/0") == 1
    assert not any(r.startswith("orders/0/") and r != "orders/0/0" for r in sender.delivered)
    # Records of the revoked partition that arrive late are ignored; other partitions carry on.
    rig.engine.accept([rec(5)])
    await settle(rig)
    assert "orders/1/0" in sender.delivered
    assert rig.engine.stats()["pending"] == 0


async def test_release_times_out_cancels_and_does_not_commit_past_the_abandoned_record(
    make_rig: Rigs,
) -> None:
    sender = FakeSender(latency_s=5)
    rig = await make_rig(settings=delivery_settings(revoke_timeout_s=0.1), sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, key=b"a"), rec(1, key=b"b")])
    await asyncio.sleep(0.02)
    positions = await rig.engine.release([T0])
    assert positions == {T0: Commit(0)}
    assert sender.in_flight == 0  # cancelled


async def test_lost_partitions_are_dropped_without_a_position(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=5)
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0)])
    await asyncio.sleep(0.02)
    rig.engine.lost([T0])
    await eventually(lambda: sender.in_flight == 0)
    assert rig.engine.positions() == {}
    assert rig.engine.stats()["pending"] == 0
    assert sender.in_flight == 0


async def test_drain_finishes_what_is_in_flight_and_starts_nothing_new(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=0.05)
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    # Keys k0..k9 each have one record in flight; k0 also has 3 more queued behind its first.
    rig.engine.accept(
        [rec(i, key=f"k{i}".encode()) for i in range(10)] + [rec(10 + i, key=b"k0") for i in range(3)]
    )
    await eventually(lambda: sender.in_flight == 8)  # every slot busy (max_in_flight 8)
    assert await rig.engine.drain(2.0)
    assert "shutdown" in rig.source.paused
    assert sorted(sender.delivered) == sorted(f"orders/0/{i}" for i in range(10))
    assert rig.engine.positions() == {T0: Commit(10)}  # the 3 queued ones come back after a restart
    assert rig.engine.stats()["pending"] == 3
    rig.engine.accept([rec(13, key=b"k5")])  # arriving after the stop: not taken
    assert rig.engine.stats()["consumed"] == 13


async def test_drain_timeout_leaves_unfinished_records_uncommitted(make_rig: Rigs) -> None:
    sender = FakeSender(latency_s=10)
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0)])
    await eventually(lambda: sender.in_flight == 1)
    assert not await rig.engine.drain(0.1)
    assert rig.engine.positions() == {T0: Commit(0)}


@pytest.mark.parametrize("count", [1, 3])
async def test_records_for_unassigned_partitions_are_ignored(count: int, make_rig: Rigs) -> None:
    rig = await make_rig()
    rig.engine.accept([rec(i, partition=9) for i in range(count)])
    assert rig.engine.stats()["consumed"] == 0


async def test_finished_records_above_the_position_are_committed_in_metadata_and_skipped_by_the_next_owner(
    make_rig: Rigs,
) -> None:
    sender = FakeSender()
    sender.slow["orders/0/0"] = 5.0
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    # Offset 0 (its own key) is slow; 1..4 (other keys) finish first.
    rig.engine.accept([rec(0, key=b"slow")] + [rec(i, key=f"k{i}".encode()) for i in range(1, 5)])
    await asyncio.sleep(0.1)
    [pos] = rig.engine.positions().values()
    assert pos.offset == 0
    await rig.close()  # offset 0 is abandoned unfinished

    # The next owner (or a restart) starts at the committed position and skips what was finished above it.
    rig2 = await make_rig()
    rig2.engine.assigned([T0], {T0: decode_done(pos.metadata, pos.offset)})
    rig2.engine.accept([rec(i, key=f"k{i}".encode()) for i in range(5)])
    await settle(rig2)
    assert rig2.sender.delivered == ["orders/0/0"]
    assert rig2.engine.stats()["consumed"] == 1
    assert rig2.engine.positions() == {T0: Commit(5)}


async def test_schema_fetches_run_off_the_event_loop_and_registry_outages_hold_the_partition(
    make_rig: Rigs,
) -> None:
    """The first record of a new schema id costs an HTTP call to the registry: it must not block the loop."""
    import threading

    rig = await make_rig()
    router = rig.router
    loop_thread = threading.get_ident()
    fetched_on: list[int] = []
    cached: set[str] = set()
    original = router.route

    def needs_registry(record: SourceRecord) -> bool:
        return record.record_id not in cached

    def route(record: SourceRecord) -> RouteResult:
        if record.record_id not in cached:
            fetched_on.append(threading.get_ident())
            if len(fetched_on) == 1:
                raise RegistryUnavailableError("registry down")  # the first fetch fails: hold, retry
            cached.add(record.record_id)
        return original(record)

    router.needs_registry = needs_registry  # type: ignore[method-assign]
    router.route = route  # type: ignore[method-assign]
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, key=b"a", timestamp_ms=1), rec(1, key=b"a", timestamp_ms=1)])
    await settle(rig)
    assert rig.sender.delivered == ["orders/0/0", "orders/0/1"]
    assert fetched_on and loop_thread not in fetched_on
    assert rig.engine.stats()["dead_lettered"] == 0


async def test_commit_metadata_is_built_only_for_a_commit_that_is_sent(
    make_rig: Rigs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata walks and compresses every offset finished above the position: behind one slow record that
    is thousands, and the commit loop looks every 50 ms. Unchanged position and count: not built at all."""
    from connector.source.offsets import PartitionOffsets

    built: list[int] = []
    real = PartitionOffsets.metadata

    def counting(self: PartitionOffsets) -> str:
        built.append(1)
        return real(self)

    monkeypatch.setattr(PartitionOffsets, "metadata", counting)
    sender = FakeSender()
    sender.slow["orders/0/0"] = 50.0
    rig = await make_rig(sender=sender)
    rig.engine.assigned([T0])
    rig.engine.accept([rec(0, key=b"slow")] + [rec(i, key=f"k{i}".encode()) for i in range(1, 40)])
    await eventually(lambda: rig.engine.stats()["delivered"] == 39)
    rig.engine.commit_async()  # (unless the commit loop asked for it already)
    assert decode_done(rig.source.metadata[-1][T0], 0) == set(range(1, 40))
    before = len(built)
    for _ in range(5):
        assert rig.engine.commit_async() == {}  # asked for already, nothing changed
    assert len(built) == before
