"""The engine alone against Attentive-shaped limits: no Kafka broker, no subprocess, the real everything else.

``python -m bench.engine_probe [--seconds S] [--keys samples|realistic]`` builds the benchmark's pool, makes
the Attentive-shaped saturation mix, and runs the connector's own :class:`DeliveryRuntime` (poll thread,
engine, lanes, deliverer, real :class:`AttentiveClient` and rate limiter) in this process against a sandbox
with Attentive's limits and 100 ± 50 ms answers. The consumer is an in-memory stand-in serving the mix from
per-partition logs (pause, resume, seek honoured), so what is measured is the engine's scheduling: when the
client alone (``bench.limiter_probe``) reaches the limits and this does not, the engine is the cause.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import secrets
import threading
import time
import zlib
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from bench import backlog as bl
from bench import keys, shaped
from bench.stack import SHAPED_SANDBOX_FLAGS, SHIPPED_CONFIG, TOPICS
from connector.attentive.endpoints import Endpoint
from connector.config import ConnectorConfig, load_config
from connector.devkafka.sandbox_process import SandboxProcess
from connector.observability.metrics import Metrics

PARTITIONS = 3


class _Message:
    __slots__ = ("_key", "_offset", "_part", "_topic", "_ts", "_value")

    def __init__(self, topic: str, part: int, offset: int, key: bytes | None, value: bytes) -> None:
        self._topic, self._part, self._offset, self._key, self._value = topic, part, offset, key, value
        self._ts = int(time.time() * 1000)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._part

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


class MemoryConsumer:
    """Serves records from per-partition logs, honouring pause/resume/seek; assigns everything at once."""

    def __init__(self, records: list[bl.PoolRecord]) -> None:
        self.logs: dict[tuple[str, int], list[_Message]] = collections.defaultdict(list)
        for r in records:
            part = zlib.crc32(r.key or b"") % PARTITIONS
            log = self.logs[(r.topic, part)]
            log.append(_Message(r.topic, part, len(log), r.key, r.value))
        self.pos = dict.fromkeys(self.logs, 0)
        self.paused: set[tuple[str, int]] = set()
        self.lock = threading.Lock()

    def subscribe(self, topics: list[str], **cb: Any) -> None:
        from confluent_kafka import TopicPartition

        cb["on_assign"](self, [TopicPartition(t, p) for t, p in self.logs])

    def incremental_assign(self, partitions: list[Any]) -> None:
        pass

    def incremental_unassign(self, partitions: list[Any]) -> None:
        pass

    def assign(self, partitions: list[Any]) -> None:  # replay mode: start where told
        for p in partitions:
            self.pos[(p.topic, p.partition)] = max(p.offset, 0)

    def assignment(self) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(t, p) for t, p in self.logs]

    def position(self, partitions: list[Any]) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(p.topic, p.partition, self.pos[(p.topic, p.partition)]) for p in partitions]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        parts = [p for t, p in self.logs if t == topic]
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(parts))})

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(p.topic, p.partition, -1001) for p in partitions]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        out: list[Any] = []
        with self.lock:
            for tp, log in self.logs.items():
                if tp in self.paused:
                    continue
                take = log[self.pos[tp] : self.pos[tp] + max(1, num_messages // len(self.logs))]
                self.pos[tp] += len(take)
                out.extend(take)
                if len(out) >= num_messages:
                    break
        if not out:
            time.sleep(min(timeout, 0.01))
        return out[:num_messages] if len(out) <= num_messages else self._give_back(out, num_messages)

    def _give_back(self, out: list[Any], n: int) -> list[Any]:
        for m in out[n:]:
            tp = (m.topic(), m.partition())
            self.pos[tp] = min(self.pos[tp], m.offset())
        return out[:n]

    def pause(self, partitions: list[Any]) -> None:
        self.paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[Any]) -> None:
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def seek(self, partition: Any) -> None:
        with self.lock:
            self.pos[(partition.topic, partition.partition)] = partition.offset

    def commit(self, *a: Any, **kw: Any) -> None:
        pass

    def get_watermark_offsets(self, partition: Any, timeout: float = -1, cached: bool = False) -> Any:
        return (0, len(self.logs[(partition.topic, partition.partition)]))

    def close(self) -> None:
        pass


class NullProducer:
    def produce(self, topic: str, value: Any = None, key: Any = None, **kw: Any) -> None:
        kw["on_delivery"](None, None)

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        return 0


def probe_config(
    name: str,
    base_url: str,
    api_key: str,
    *,
    delivery: Mapping[str, Any] | None = None,
    rate_limits: Mapping[str, float] | None = None,
) -> ConnectorConfig:
    """The shipped config for an in-process probe: schemas read from their files (``encoding: raw``, no
    registry), pointed at ``base_url`` with ``api_key``, logging at WARNING, ``delivery`` settings and
    ``rate_limits`` laid over it; written as ``.cache/<name>.yaml`` and loaded."""
    raw: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    base = SHIPPED_CONFIG.parent
    for topic in raw["topics"].values():
        topic["schema"] = str((base / topic["schema"]).resolve())
        topic["encoding"] = "raw"
    raw["rules"] = str((base / raw["rules"]).resolve())
    raw["attentive"]["base_url"] = base_url
    raw["attentive"]["api_key"] = api_key
    if rate_limits is not None:
        raw["attentive"]["rate_limits"] = dict(rate_limits)
    raw["logging"] = {"format": "json", "level": "WARNING"}
    raw["delivery"].update(delivery or {})
    path = base.parent / ".cache" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path, env={})


def memory_runtime(
    config: ConnectorConfig, records: list[bl.PoolRecord], client: Any, metrics: Metrics
) -> Any:
    """The connector's :class:`DeliveryRuntime` over a :class:`MemoryConsumer` of ``records`` and a producer
    that acknowledges at once (the probes' stand-ins for Kafka), with ``client`` as its Attentive client."""
    from connector.pipeline.runtime import DeliveryRuntime, build_router

    consumer = MemoryConsumer(records)
    return DeliveryRuntime(
        config,
        router=build_router(config),
        client=client,
        metrics=metrics,
        health=None,
        consumer_factory=lambda conf: consumer,
        producer_factory=lambda conf: NullProducer(),
        topics=list(TOPICS),
    )


async def _run(config: ConnectorConfig, records: list[bl.PoolRecord], seconds: float) -> dict[str, Any]:
    from connector.pipeline.runtime import build_client, settle_heap

    metrics = Metrics(CollectorRegistry())
    runtime = memory_runtime(config, records, build_client(config, metrics), metrics)
    settle_heap()
    stalls = _Stalls()
    await runtime.start()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    watcher = asyncio.create_task(stalls.watch_loop())
    snapshots: list[dict[str, Any]] = []
    try:
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(0.5)
            snapshots.append(_snapshot(runtime))
            if runtime.engine.stats()["consumed"] >= len(records) and runtime.engine.stats()["pending"] == 0:
                break
    finally:
        watcher.cancel()
        stalls.close()
    cpu = time.process_time() - cpu0
    stats = runtime.engine.stats()
    await runtime.shutdown(5)
    return {
        "stats": stats,
        "cpu_s": round(cpu, 2),
        "wall_s": round(time.monotonic() - t0, 1),
        "peak_buffered": runtime.engine.buffer.peak,
        "stalls": stalls.summary(),
        "where_records_wait": snapshots[len(snapshots) // 2] if snapshots else {},
        "timeline": [
            f"{0.5 * (i + 1):4.1f}s buffered={s['buffered']} unrouted={s['backlog_unrouted']} "
            f"in_flight={s['in_flight']} at_pumps={sum(s['at_pumps'].values())}"
            for i, s in enumerate(snapshots)
        ],
    }


class _Stalls:
    """Event-loop lag (a 5 ms timer's overshoot) and garbage-collector pauses, to tell a stall of the loop
    by the collector from one by the engine's own work or by other processes on the machine."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self.gc_ms: dict[int, list[float]] = collections.defaultdict(list)
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_ms[int(info["generation"])].append((time.perf_counter() - self._gc_start) * 1000)

    async def watch_loop(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags_ms.append((time.perf_counter() - t) * 1000 - 5)

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)

    def summary(self) -> dict[str, Any]:
        lags = sorted(self.lags_ms) or [0.0]
        return {
            "loop_lag_ms": {
                "p50": round(lags[len(lags) // 2], 1),
                "p99": round(lags[int(len(lags) * 0.99)], 1),
                "max": round(lags[-1], 1),
                "over_50ms": sum(1 for x in lags if x > 50),
            },
            "gc": {
                f"gen{g}": {"count": len(v), "total_ms": round(sum(v)), "max_ms": round(max(v), 1)}
                for g, v in sorted(self.gc_ms.items())
            },
        }


def _snapshot(runtime: Any) -> dict[str, Any]:
    """Where the buffered records are, at one moment: which stage each one waits in."""
    engine, deliverer = runtime.engine, runtime.deliverer
    lanes = list(engine._lanes._lanes.values())  # noqa: SLF001  (a probe looks inside)
    return {
        "buffered": engine.buffer.records,
        "backlog_unrouted": sum(len(p.backlog) for p in engine._parts.values()),  # noqa: SLF001
        "lanes": len(lanes),
        "behind_same_key": sum(max(0, len(lane.queue) - 1) for lane in lanes),
        "max_lane": max((len(lane.queue) for lane in lanes), default=0),
        "at_pumps": {e: len(q) for e, q in deliverer._queues.items() if len(q)},  # noqa: SLF001
        "in_flight": deliverer.in_flight,
        "limiter": {
            str(e): {"shared": lim.shared, "rate": round(lim.rate, 1), "slow": round(lim._slow_interval, 4)}  # noqa: SLF001
            for e in (Endpoint.PRODUCT_VIEW, Endpoint.SUBSCRIBE)
            for lim in [runtime.client.limiter[e]]
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="cap on the drain (default: %(default)s)")
    ap.add_argument("--busy-s", type=float, default=20.0, help="limit × this many calls per endpoint")
    ap.add_argument("--keys", choices=(keys.SAMPLES, keys.REALISTIC), default=keys.SAMPLES)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="delivery.KEY override")
    ap.add_argument(
        "--sandbox-flag", action="append", default=[], help="extra sandbox flag (e.g. --no-validate)"
    )
    args = ap.parse_args()
    api_key = "probe-" + secrets.token_hex(8)
    sb = SandboxProcess(*SHAPED_SANDBOX_FLAGS, *args.sandbox_flag, api_key=api_key)
    try:
        delivery = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
        config = probe_config("engine-probe", sb.url, api_key, delivery=delivery)
        pool = bl.build_pool(config, TOPICS, 2000)
        limits = {e: config.attentive.rate_limit(e) for e in Endpoint}
        mix = keys.rekey(
            pool, bl.shaped_mix(pool, {e: r * args.busy_s for e, r in limits.items()}), args.keys
        )
        sb.clear()
        out = asyncio.run(_run(config, mix, args.seconds))
        journal = sb.journal()
        sat = shaped.saturation(journal, limits, window_s=out["wall_s"])
        t0 = min(shaped.journal_time_ms(e) for e in journal) / 1000
        per_s: dict[str, list[int]] = collections.defaultdict(lambda: [0] * int(out["wall_s"] + 2))
        for e in journal:
            if 200 <= int(e["status"]) < 300:
                per_s[str(e["path"])][int(shaped.journal_time_ms(e) / 1000 - t0)] += 1
        out["per_second"] = {path: " ".join(map(str, v)) for path, v in per_s.items()}
        # When each 429 was answered (seconds from the first request, to the 10 ms): a stall after one shows
        # how long the endpoint was held.
        out["429_at_s"] = {
            path: [round(shaped.journal_time_ms(e) / 1000 - t0, 2) for e in entries]
            for path in per_s
            if (entries := [e for e in journal if e["path"] == path and int(e["status"]) == 429])
        }
        out["endpoints"] = {
            e: f"{v['achieved_per_s']}/{v['limit']:g} ({v['share_429']})" for e, v in sat.items()
        }
        out["keys"] = keys.spread(mix)
        print(json.dumps(out, indent=1))
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
