"""``attentive-connector dlq replay``: re-route dead-lettered records through the current rules.

After a fix (a rule corrected, a bad deploy reverted), the records that failed can be sent again::

    attentive-connector dlq replay --config config/connector.yaml --topic orders.dlq [--rule R] [--since 2h]

* It reads the dead-letter topic with a group of its own (``<group>.replay.<dlq topic>``), from that group's
  committed offsets up to the end offsets seen at start, and commits as it goes: a second run does not
  replay what the first one finished, and an interrupted run resumes.
* Each dead letter's ORIGINAL key, value and headers are rebuilt into a record with the original topic,
  partition, offset and timestamp (from the ``dlq.original.*`` headers), so routing and the deterministic
  ``externalEventId`` are exactly as the first time.
* Delivery is the connector's own engine: key order, retries with backoff, circuits, auth pause. A record that
  fails again is written to the dead-letter topic again (after the replay's end offsets, so this run does not
  read it back), with its original coordinates.
* ``--rule R`` replays only dead letters whose ``dlq.rule`` is R; ``--since TIME`` only those that first
  failed at or after TIME (RFC 3339, or relative: ``30m``, ``2h``, ``1d``). Records filtered out are passed
  over, and the replay group's position moves past them: to replay them later, use another ``--group``.
* A progress line on stderr; a summary line on stdout at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from connector.config import ConnectorConfig, load_config
from connector.delivery.dead_letter import DLQ_PREFIX, header_map
from connector.delivery.protocols import ApiSender, ProducerFactory, RecordRouter
from connector.errors import ConfigError
from connector.observability.logs import configure_logging, register_secret
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import DeliveryRuntime
from connector.source.kafka import Inbound
from connector.source.offsets import TP
from connector.source.protocols import ConsumerFactory, KafkaMessage
from connector.types import SourceRecord

log = logging.getLogger(__name__)

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: float | None = None) -> float:
    """``--since``: RFC 3339 / ISO 8601 (naive = UTC) or a relative age (``90s``, ``30m``, ``2h``, ``1d``)."""
    m = _RELATIVE.match(text)
    if m:
        base = time.time() if now is None else now
        return base - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: not a time; use RFC 3339 (2025-01-31T12:00:00Z) or an age like 30m, 2h, 1d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_rfc3339(text: str) -> float | None:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def dead_letter_transform(rule: str | None, since: float | None) -> Callable[[KafkaMessage], Inbound]:
    """DLQ message → :class:`Inbound`: tracked at its DLQ position, processed as the original record."""

    def transform(msg: KafkaMessage) -> Inbound:
        tp = TP(msg.topic() or "", msg.partition() or 0)
        offset = msg.offset() or 0
        raw_headers = msg.headers() or []
        size = len(msg.value() or b"") + len(msg.key() or b"")
        h = header_map(raw_headers)
        topic = h.get("dlq.original.topic")
        try:
            partition = int(h.get("dlq.original.partition", ""))
            orig_offset = int(h.get("dlq.original.offset", ""))
        except ValueError:
            topic = None
        if not topic:
            log.warning("%s/%d is not a dead letter (no dlq.original.* headers); passing over it", tp, offset)
            return Inbound(tp, offset, None, size, skip="not_a_dead_letter")
        if rule is not None and h.get("dlq.rule", "") != rule:
            return Inbound(tp, offset, None, size, skip="rule")
        if since is not None:
            first = _parse_rfc3339(h.get("dlq.first.failure", ""))
            if first is None or first < since:
                return Inbound(tp, offset, None, size, skip="since")
        ts = h.get("dlq.original.timestamp", "")
        record = SourceRecord(
            topic=topic,
            partition=partition,
            offset=orig_offset,
            key=msg.key(),
            value=msg.value(),
            headers=tuple((k, v or b"") for k, v in raw_headers if not k.startswith(DLQ_PREFIX)),
            timestamp_ms=int(ts) if ts.lstrip("-").isdigit() else None,
        )
        return Inbound(tp, offset, record, size)

    return transform


def replay_group(config: ConnectorConfig, dlq_topic: str) -> str:
    return f"{config.kafka.group_id}.replay.{dlq_topic}"


async def replay(
    config: ConnectorConfig,
    dlq_topic: str,
    *,
    rule: str | None = None,
    since: float | None = None,
    group_id: str | None = None,
    router: RecordRouter | None = None,
    client: ApiSender | None = None,
    consumer_factory: ConsumerFactory | None = None,
    producer_factory: ProducerFactory | None = None,
    metrics: Metrics | None = None,
    progress: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, int]:
    """Replay ``dlq_topic`` up to its end offsets at start; returns the counts (``total`` included)."""
    from connector.pipeline.runtime import build_client, build_router

    metrics = metrics if metrics is not None else Metrics()
    router = router if router is not None else build_router(config)
    client = client if client is not None else build_client(config, metrics)
    stop = stop if stop is not None else asyncio.Event()
    # Fail fast on a refused key: a command should say so, not wait silently at the auth gate.
    try:
        await client.me()
    except Exception:
        await client.aclose()
        raise
    runtime = DeliveryRuntime(
        config,
        router=router,
        client=client,
        metrics=metrics,
        health=None,
        consumer_factory=consumer_factory,
        producer_factory=producer_factory,
        group_id=group_id or replay_group(config, dlq_topic),
        fixed_topic=dlq_topic,
        transform=dead_letter_transform(rule, since),
    )
    await runtime.start()
    engine = runtime.engine
    failed = asyncio.ensure_future(runtime.wait_failed())
    stopped = asyncio.ensure_future(stop.wait())
    stats = engine.stats()
    try:
        while True:
            stats = engine.stats()
            total = _total(runtime)
            if progress is not None and total is not None:
                _show(progress, dlq_topic, stats, total)
            if engine.exhausted_event.is_set() and stats["pending"] == 0:
                break
            done, _ = await asyncio.wait({failed, stopped}, timeout=0.25)
            if done:
                break
    finally:
        stopped.cancel()
        await runtime.shutdown(config.delivery.shutdown_grace_s)
        if not failed.done():
            failed.cancel()
    if failed.done() and not failed.cancelled() and (error := failed.exception()) is not None:
        raise error
    stats = engine.stats()
    stats["total"] = _total(runtime) or 0
    if progress is not None:
        _show(progress, dlq_topic, stats, stats["total"])
        progress.write("\n")
        progress.flush()
    return stats


def _total(runtime: DeliveryRuntime) -> int | None:
    if runtime.poller is None or not runtime.poller.plan:
        return None
    return sum(max(0, end - start) for start, end in runtime.poller.plan.values())


def _show(out: TextIO, topic: str, stats: dict[str, int], total: int) -> None:
    done = stats["consumed"] - stats["pending"]
    out.write(
        f"\rreplay {topic}: {done}/{total} "
        f"(delivered {stats['delivered']}, dead-lettered again {stats['dead_lettered']}, "
        f"skipped {stats['skipped'] + stats['stale']}, filtered out {stats['filtered']})"
    )
    out.flush()


# -- the command ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="config/connector.yaml", metavar="FILE", help="connector config file"
    )
    parser.add_argument(
        "--topic", required=True, metavar="DLQ", help="the dead-letter topic, e.g. orders.dlq"
    )
    parser.add_argument("--rule", metavar="R", help="only dead letters whose dlq.rule header is R")
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only dead letters that first failed at or after TIME (RFC 3339, or 30m/2h/1d)",
    )
    parser.add_argument(
        "--group", metavar="ID", help="consumer group (default: <kafka.group_id>.replay.<DLQ>)"
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    since = parse_since(args.since) if args.since else None
    configure_logging(config.logging.format, config.logging.level)
    with contextlib.suppress(Exception):
        register_secret(config.attentive.resolved_api_key().get_secret_value())
    try:
        stats = asyncio.run(_run(config, args.topic, args.rule, since, args.group))
    except ConfigError:
        raise
    except Exception as exc:
        print(f"error: dlq replay failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"replay: topic={args.topic} read={stats['consumed']} delivered={stats['delivered']} "
        f"dead_lettered={stats['dead_lettered']} skipped={stats['skipped'] + stats['stale']} "
        f"filtered={stats['filtered']} pending={stats['pending']}"
    )
    return 0 if stats["pending"] == 0 else 1


async def _run(
    config: ConnectorConfig, topic: str, rule: str | None, since: float | None, group: str | None
) -> dict[str, int]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await replay(config, topic, rule=rule, since=since, group_id=group, progress=sys.stderr, stop=stop)
