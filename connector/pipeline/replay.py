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
* ``--rule R`` replays only dead letters whose ``dlq.rule`` is R (a name of the rule table: anything else is
  an error listing the names); ``--since TIME`` only those that first failed at or after TIME (RFC 3339, or
  relative: ``30m``, ``2h``, ``1d``). Records filtered out are passed over, and the replay group's position
  moves past them: to replay them later, use another ``--group``.
* ``--topic`` must be one of the config's dead-letter topics (``--force`` replays another topic) and must
  exist; Kafka must answer within 10 s. Each failing again carries ``connector.replay.count`` (how many
  replays it has been through).
* ``--dry-run`` reads the same range, says what would be replayed (by rule) and commits nothing.
* Progress lines on stderr only when it is a terminal (whole lines, so log lines never cut into them); a
  summary line on stdout at the end.
"""

from __future__ import annotations

import argparse
import asyncio
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
from connector.errors import ApiError, ConfigError
from connector.formats import parse_duration
from connector.observability.logs import configure_logging, register_secret
from connector.observability.metrics import Metrics
from connector.pipeline.runtime import DeliveryRuntime
from connector.source.kafka import Inbound
from connector.source.offsets import TP
from connector.source.protocols import ConsumerFactory, KafkaMessage
from connector.types import SourceRecord

log = logging.getLogger(__name__)

REPLAY_COUNT_HEADER = "connector.replay.count"
"""How many replays a record has been through (it survives re-dead-lettering: not a ``dlq.*`` header)."""

_RELATIVE = re.compile(r"^\s*\d+(?:\.\d+)?\s*[smhd]\s*$")


def parse_since(text: str, *, now: float | None = None) -> float:
    """``--since``: RFC 3339 / ISO 8601 (naive = UTC) or a relative age (``90s``, ``30m``, ``2h``, ``1d``)."""
    if _RELATIVE.match(text):
        base = time.time() if now is None else now
        return base - parse_duration(text)
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
        replays = h.get(REPLAY_COUNT_HEADER, "0")
        count = (int(replays) if replays.isdigit() else 0) + 1
        headers = [
            (k, v or b"") for k, v in raw_headers if not k.startswith(DLQ_PREFIX) and k != REPLAY_COUNT_HEADER
        ]
        headers.append((REPLAY_COUNT_HEADER, str(count).encode()))
        record = SourceRecord(
            topic=topic,
            partition=partition,
            offset=orig_offset,
            key=msg.key(),
            value=msg.value(),
            headers=tuple(headers),
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
    before_reading: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Replay ``dlq_topic`` up to its end offsets at start; returns the counts (``total`` included).

    ``before_reading`` runs once Attentive has accepted the key, before anything is consumed (the command's
    Kafka reachability and topic checks: they raise to stop the replay).
    """
    from connector.pipeline.runtime import build_client, build_router

    metrics = metrics if metrics is not None else Metrics()
    router = router if router is not None else build_router(config)
    client = client if client is not None else build_client(config, metrics)
    stop = stop if stop is not None else asyncio.Event()
    # Fail fast on a refused key: a command should say so, not wait silently at the auth gate.
    try:
        await client.me()
        if before_reading is not None:
            before_reading()
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
    shown = 0.0
    try:
        while True:
            stats = engine.stats()
            total = _total(runtime)
            if progress is not None and total is not None and time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
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
    return stats


def _total(runtime: DeliveryRuntime) -> int | None:
    if runtime.poller is None or not runtime.poller.plan:
        return None
    return sum(max(0, end - start) for start, end in runtime.poller.plan.values())


PROGRESS_EVERY_S = 2.0


def _show(out: TextIO, topic: str, stats: dict[str, int], total: int) -> None:
    """One whole line per call, in one write: log lines on the same stream go between lines, never into one."""
    done = stats["consumed"] - stats["pending"]
    out.write(
        f"replay {topic}: {done}/{total} "
        f"(delivered {stats['delivered']}, dead-lettered again {stats['dead_lettered']}, "
        f"skipped {stats['skipped'] + stats['stale']}, filtered out {stats['filtered']})\n"
    )
    out.flush()


# -- checks before anything is read -------------------------------------------------------------------------


def check_rule(rule: str | None, names: list[str]) -> None:
    """``--rule`` must name a rule of the table: a typo would filter out (and move past) every record."""
    if rule is not None and names and rule not in names and rule != UNMATCHED_RULE:
        raise ConfigError(
            f"--rule {rule!r} is not a rule of the rule table; the rules are: {', '.join(names)}"
        )


UNMATCHED_RULE = ""
"""``dlq.rule`` of a record no rule matched (``delivery.unmatched: dead_letter``) or that failed to decode."""


def check_topic(config: ConnectorConfig, topic: str, *, force: bool, existing: set[str] | None) -> None:
    """``--topic`` must be one of the config's dead-letter topics (unless forced) and exist on the cluster."""
    dlqs = sorted({config.dlq_topic(t) for t in config.topics})
    if topic not in dlqs and not force:
        raise ConfigError(
            f"--topic {topic!r} is not a dead-letter topic of {config.source_file or 'the config'} "
            f"(those are: {', '.join(dlqs)}); add --force to replay it anyway"
        )
    if existing is not None and topic not in existing:
        raise ConfigError(
            f"--topic {topic!r}: no such topic on the cluster at {config.kafka.bootstrap_servers}"
        )


# -- --dry-run -----------------------------------------------------------------------------------------------


def dry_run(
    config: ConnectorConfig,
    dlq_topic: str,
    *,
    rule: str | None = None,
    since: float | None = None,
    group_id: str | None = None,
    consumer_factory: ConsumerFactory | None = None,
    timeout_s: float = 60.0,
) -> dict[str, int]:
    """What a replay would read (from the group's committed offsets to the end offsets now) and replay, by
    ``dlq.rule``; commits nothing. Keys: ``read``, ``replay``, ``filtered``, ``not_dead_letters`` and
    ``rule:<name>`` for each rule that would be replayed."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from connector.pipeline.runtime import default_consumer_factory
    from connector.source.kafka import consumer_config

    conf = consumer_config(config, group_id=group_id or replay_group(config, dlq_topic))
    conf["enable.auto.commit"] = False
    consumer = (consumer_factory or default_consumer_factory)(conf)
    counts: dict[str, int] = {"read": 0, "replay": 0, "filtered": 0, "not_dead_letters": 0}
    transform = dead_letter_transform(rule, since)
    try:
        partitions = consumer.list_topics(dlq_topic, timeout=10).topics[dlq_topic].partitions
        tps = [TopicPartition(dlq_topic, p) for p in sorted(partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        ends: dict[int, int] = {}
        start: list[TopicPartition] = []
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            begin = committed.get(tp.partition, -1)
            begin = begin if begin is not None and begin >= 0 else low
            if begin < high:
                ends[tp.partition] = high
                start.append(
                    TopicPartition(dlq_topic, tp.partition, begin if begin >= 0 else OFFSET_BEGINNING)
                )
        consumer.assign(start)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    continue
                partition, offset = msg.partition() or 0, msg.offset() or 0
                end = ends.get(partition)
                if end is None or offset >= end:
                    continue  # written after the dry run started
                if offset + 1 >= end:
                    ends.pop(partition)
                counts["read"] += 1
                inbound = transform(msg)
                if inbound.record is None:
                    counts["not_dead_letters" if inbound.skip == "not_a_dead_letter" else "filtered"] += 1
                    continue
                counts["replay"] += 1
                name = header_map(msg.headers() or []).get("dlq.rule", "") or "(none)"
                counts[f"rule:{name}"] = counts.get(f"rule:{name}", 0) + 1
    finally:
        consumer.close()
    return counts


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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be replayed (by rule); deliver and commit nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replay a topic that is not one of the config's dead-letter topics",
    )


def main(args: argparse.Namespace) -> int:
    from connector.errors import KafkaUnreachableError
    from connector.pipeline.runtime import build_router
    from connector.source.kafka import consumer_config
    from connector.source.probe import cluster_topics

    config = load_config(args.config)
    since = parse_since(args.since) if args.since else None
    configure_logging(config.logging.format, config.logging.level)
    check_topic(config, args.topic, force=args.force, existing=None)
    router = build_router(config)
    check_rule(args.rule, router.rule_names())

    def probe() -> None:
        check_topic(config, args.topic, force=args.force, existing=cluster_topics(consumer_config(config)))

    if args.dry_run:
        try:
            probe()
        except KafkaUnreachableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        counts = dry_run(config, args.topic, rule=args.rule, since=since, group_id=args.group)
        by_rule = ", ".join(f"{k[5:]}={v}" for k, v in sorted(counts.items()) if k.startswith("rule:"))
        print(
            f"dry run: topic={args.topic} read={counts['read']} would_replay={counts['replay']} "
            f"filtered={counts['filtered']} not_dead_letters={counts['not_dead_letters']}"
            + (f" by_rule: {by_rule}" if by_rule else "")
            + " (nothing delivered, nothing committed)"
        )
        return 0
    key = config.attentive.resolved_api_key()  # ConfigError (exit 2) for a missing, empty or unreadable key
    register_secret(key.get_secret_value())
    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        stats = asyncio.run(_run(config, args.topic, args.rule, since, args.group, router, progress, probe))
    except ConfigError:
        raise
    except KafkaUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        from connector.attentive.check_auth import explain

        print(
            f"error: dlq replay failed: {explain(exc, config.attentive.base_url, config.attentive.key_source)}",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # noqa: BLE001 - the command's last word: one line naming the error, exit 1
        print(f"error: dlq replay failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"replay: topic={args.topic} read={stats['consumed']} delivered={stats['delivered']} "
        f"dead_lettered={stats['dead_lettered']} skipped={stats['skipped'] + stats['stale']} "
        f"filtered={stats['filtered']} pending={stats['pending']}"
    )
    return 0 if stats["pending"] == 0 else 1


async def _run(
    config: ConnectorConfig,
    topic: str,
    rule: str | None,
    since: float | None,
    group: str | None,
    router: RecordRouter,
    progress: TextIO | None,
    probe: Callable[[], None],
) -> dict[str, int]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await replay(
        config,
        topic,
        rule=rule,
        since=since,
        group_id=group,
        router=router,
        progress=progress,
        stop=stop,
        before_reading=probe,
    )
