"""Benchmark data: realistic records encoded once, then produced by the hundred thousand.

Generating and Avro-encoding a million distinct records would cost the benchmark more time than draining them,
so a *pool* of distinct records per topic (from :func:`connector.samples.generate`, encoded with the topic's
configured encoding) is produced over and over. Each pool record is routed once with the connector's own
router, so the benchmark knows which Attentive endpoints every record turns into; that is how the
Attentive-shaped backlog is sized to keep each endpoint busy.

``occurred_at`` is set to the pool's creation time so rules with a ``max_age`` see fresh events.
"""

from __future__ import annotations

import collections
import itertools
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from connector.attentive.endpoints import Endpoint
from connector.config import ConnectorConfig
from connector.types import SourceRecord

Signature = tuple[Endpoint, ...]


@dataclass(frozen=True)
class PoolRecord:
    topic: str
    key: bytes | None
    value: bytes
    endpoints: Signature  # the calls routing makes of it, in order (empty: skipped / stale / error)
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # before encoding


@dataclass(frozen=True)
class Request:
    """A prebuilt Attentive request (for the bare-HTTP ceiling)."""

    path: str
    body: bytes
    record_id: str


@dataclass
class Pool:
    """Encoded records per topic, the endpoint signature of each, and the requests routing built."""

    records: dict[str, list[PoolRecord]]
    requests: list[Request] = field(default_factory=list)
    encoders: dict[str, Any] = field(default_factory=dict)  # topic -> connector.avro.encoder.Encoder

    def all(self) -> list[PoolRecord]:
        return [r for recs in self.records.values() for r in recs]

    def by_signature(self) -> dict[Signature, list[PoolRecord]]:
        out: dict[Signature, list[PoolRecord]] = collections.defaultdict(list)
        for r in self.all():
            if r.endpoints:
                out[r.endpoints].append(r)
        return dict(out)

    def calls_per_record(self) -> float:
        recs = self.all()
        return sum(len(r.endpoints) for r in recs) / max(len(recs), 1)


def build_pool(config: ConnectorConfig, topics: Sequence[str], size_per_topic: int, *, seed: int = 1) -> Pool:
    """Generate, freshen, encode and route ``size_per_topic`` sample records per topic."""
    from connector.attentive.jsonio import dumps
    from connector.avro.encoder import Encoder
    from connector.rules.router import Router
    from connector.samples import generate

    router = Router.from_config(config)
    now = datetime.now(UTC)
    records: dict[str, list[PoolRecord]] = {}
    requests: list[Request] = []
    encoders: dict[str, Any] = {}
    for t_index, topic in enumerate(topics):
        encoder = encoders[topic] = Encoder.for_topic(config, topic, check=False)
        out: list[PoolRecord] = []
        for i, rec in enumerate(generate(topic, size_per_topic, seed=seed + t_index)):
            if "occurred_at" in rec:
                rec["occurred_at"] = now
            value = encoder.encode(rec)
            key = _key_of(rec)
            routed = router.route(
                SourceRecord(topic, 0, i, key, value, timestamp_ms=int(now.timestamp() * 1000))
            )
            out.append(PoolRecord(topic, key, value, tuple(c.endpoint for c in routed.calls), rec))
            requests.extend(Request(c.endpoint.path, dumps(c.body), c.record_id) for c in routed.calls)
        records[topic] = out
    return Pool(records, requests, encoders)


def _key_of(rec: Mapping[str, Any]) -> bytes | None:
    customer = rec.get("customer")
    if isinstance(customer, Mapping) and customer.get("id"):
        return str(customer["id"]).encode()
    return None


def natural_mix(pool: Pool, count: int, *, seed: int = 2) -> list[PoolRecord]:
    """``count`` records drawn from the whole pool (all three topics, their natural mix of kinds)."""
    recs = pool.all()
    rng = random.Random(seed)
    return [recs[rng.randrange(len(recs))] for _ in range(count)]


def plan_counts(signatures: Mapping[Signature, int], need: Mapping[Endpoint, float]) -> dict[Signature, int]:
    """How many records of each signature make every endpoint get about ``need[e]`` calls.

    Greedy. Endpoints that no single-call record reaches (custom attributes come only beside a subscribe or
    a loyalty event) are planned first, while every endpoint still has room; then the others, smallest need
    first. For each endpoint short of calls, take the signature that overshoots the other endpoints' needs
    least (then: fewer calls per record, then the more common signature). This keeps every endpoint near
    its need, so "half the limit" really is half for each one.
    """
    remaining = dict(need)
    counts: dict[Signature, int] = collections.Counter()
    singles = {s[0] for s in signatures if len(set(s)) == 1}
    for endpoint in sorted(need, key=lambda e: (e in singles, need[e])):
        if remaining[endpoint] <= 0:
            continue
        candidates = [s for s in signatures if endpoint in s]
        if not candidates:
            continue

        def records_needed(sig: Signature, endpoint: Endpoint = endpoint) -> int:
            return int(-(-remaining[endpoint] // sig.count(endpoint)))  # ceil

        def overshoot(sig: Signature, endpoint: Endpoint = endpoint) -> float:
            n = records_needed(sig)
            extra = collections.Counter(e for e in sig if e != endpoint)
            return sum(max(0.0, n * k - max(remaining.get(e, 0.0), 0.0)) for e, k in extra.items())

        best = min(candidates, key=lambda s: (overshoot(s), len(s), -signatures[s]))
        n = records_needed(best)
        counts[best] += n
        for e in best:
            remaining[e] = remaining.get(e, 0) - n
    return dict(counts)


def cap_counts(counts: Mapping[Signature, int], need: Mapping[Endpoint, float]) -> dict[Signature, int]:
    """``counts`` scaled down until no endpoint gets more than ``need[e]`` calls (+2 %).

    Records fan out (an opt-in signup calls identity, then subscribe, then custom attributes; a loyalty event
    custom attributes and custom events), so meeting one endpoint's need can overshoot another's. Where no
    endpoint may be driven past its share — the added-latency run at half of every limit, the saturation run
    at the limits — the records reaching an overshot endpoint are thinned out instead.
    """
    out = dict(counts)
    for _ in range(50):
        calls: collections.Counter[Endpoint] = collections.Counter()
        for sig, n in out.items():
            for e in sig:
                calls[e] += n
        over = {e: need[e] / c for e, c in calls.items() if e in need and c > need[e] * 1.02}
        if not over:
            break
        for sig, n in out.items():
            factors = [f for e, f in over.items() if e in sig]
            if factors:
                out[sig] = int(n * min(factors))
    return {sig: n for sig, n in out.items() if n > 0}


def shaped_mix(
    pool: Pool, need: Mapping[Endpoint, float], *, seed: int = 3, at_most: bool = False
) -> list[PoolRecord]:
    """Records whose calls give each endpoint about ``need[e]`` requests, shuffled so every endpoint's
    records are spread evenly through the backlog. ``at_most``: no endpoint gets more than its need (see
    :func:`cap_counts`)."""
    by_sig = pool.by_signature()
    counts = plan_counts({s: len(v) for s, v in by_sig.items()}, need)
    if at_most:
        counts = cap_counts(counts, need)
    rng = random.Random(seed)
    out: list[PoolRecord] = []
    for sig, n in counts.items():
        choices = by_sig[sig]
        out.extend(choices[i % len(choices)] for i in range(n))
    rng.shuffle(out)
    return out


def endpoint_calls(records: Iterable[PoolRecord]) -> dict[Endpoint, int]:
    c: collections.Counter[Endpoint] = collections.Counter()
    for r in records:
        c.update(r.endpoints)
    return dict(c)


# ---------------------------------------------------------------------------------------------- producing


@dataclass
class Produced:
    """Offsets and Kafka timestamps of produced records, from the delivery reports."""

    count: int = 0
    errors: list[str] = field(default_factory=list)
    timestamps: dict[str, int] = field(default_factory=dict)  # "topic/partition/offset" -> timestamp ms
    keys: dict[str, bytes | None] = field(default_factory=dict)  # same ids -> Kafka key (paced runs only)
    _lock: threading.Lock = field(default_factory=threading.Lock)


def make_producer(bootstrap: str, *, low_latency: bool = False) -> Producer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 1 if low_latency else 50,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "compression.type": "none",
        "acks": "all",
    }
    return Producer(conf)


def produce(
    bootstrap: str,
    records: Iterable[PoolRecord],
    *,
    keep_timestamps: bool = False,
    producer: Producer | None = None,
) -> Produced:
    """Produce ``records`` (each to its topic, keyed) and wait until all are acknowledged."""
    p = producer or make_producer(bootstrap)
    result = Produced()

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            result.errors.append(str(err))
            return
        result.count += 1
        if keep_timestamps:
            result.timestamps[f"{msg.topic()}/{msg.partition()}/{msg.offset()}"] = msg.timestamp()[1]

    for r in records:
        while True:
            try:
                p.produce(r.topic, r.value, r.key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(120)
    if remaining or result.errors:
        raise RuntimeError(f"producing failed: {remaining} unacknowledged, errors: {result.errors[:3]}")
    return result


def produce_paced(bootstrap: str, records: Sequence[PoolRecord], *, duration_s: float) -> Produced:
    """Produce ``records`` at a steady rate spread over ``duration_s`` (for the added-latency measurement).

    Kafka timestamps are taken by the producer at ``produce()``, the moment the record "happens".
    """
    p = make_producer(bootstrap, low_latency=True)
    result = Produced()

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            result.errors.append(str(err))
            return
        result.count += 1
        rid = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
        result.timestamps[rid] = msg.timestamp()[1]
        result.keys[rid] = msg.key()

    interval = duration_s / max(len(records), 1)
    start = time.monotonic()
    for i, r in enumerate(records):
        due = start + i * interval
        while (delay := due - time.monotonic()) > 0:
            p.poll(min(delay, 0.01))
        p.produce(r.topic, r.value, r.key, on_delivery=on_delivery)
        p.poll(0)
    remaining = p.flush(60)
    if remaining or result.errors:
        raise RuntimeError(f"producing failed: {remaining} unacknowledged, errors: {result.errors[:3]}")
    return result


# ---------------------------------------------------------------------------------------------- offsets


def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """High watermark of every partition of ``topics``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets", "enable.auto.commit": False})
    try:
        md = c.list_topics(timeout=10)
        out: dict[tuple[str, int], int] = {}
        for t in topics:
            for p in md.topics[t].partitions:
                _, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                out[(t, p)] = high
        return out
    finally:
        c.close()


def start_group_at(bootstrap: str, group_id: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for a fresh consumer group so a connector in it starts exactly there.

    Each phase of the benchmark reads the same topics; this is how a phase skips the data of the phases
    before it without a broker per phase.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def chunks(it: Iterable[PoolRecord], n: int) -> Iterator[list[PoolRecord]]:
    iterator = iter(it)
    while batch := list(itertools.islice(iterator, n)):
        yield batch
