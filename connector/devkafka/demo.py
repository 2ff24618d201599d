"""``attentive-connector demo``: the whole flow on one machine, ending by itself.

A real Kafka broker (see :mod:`connector.devkafka.broker`), a real Schema Registry (Apicurio, Confluent-compatible
API: :mod:`connector.devkafka.apicurio`) for the topics encoded in Confluent wire format, the local Attentive
sandbox with Attentive's rate limits and some latency, realistic sample events on every configured topic
(orders, loyalty, signups, privacy deletion requests; signups also link the customer id through the Identity
API), plus a few records that can never be delivered, to show the dead-letter topic, and the connector
delivering them. Before the summary it prints the calls per API; the last line is always::

    demo: produced=N delivered=N skipped=N dead_lettered=N pending=0

The connector serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``--metrics-port`` (127.0.0.1) while it runs;
``--keep-running`` leaves everything up afterwards so you can look at them and the sandbox's request journal;
Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector.config import ConnectorConfig, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "connector.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="connector config (default: %(default)s)"
    )
    parser.add_argument(
        "--count", type=int, default=100, help="sample events per topic (default: %(default)s)"
    )
    parser.add_argument(
        "--bad", type=int, default=2, help="undeliverable records per topic (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave broker, sandbox and connector up until Ctrl-C"
    )
    parser.add_argument("--metrics-port", type=int, default=9400)
    parser.add_argument("--latency-ms", type=int, default=30, help="sandbox latency per request")


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _stack(args) as (config, bootstrap, sandbox_urls):
        produced = _produce(config, bootstrap, args)
        say(f"produced {produced} records to {', '.join(config.topics)}")
        stats = asyncio.run(_run_connector(config, produced, args, sandbox_urls))
        say(_calls_by_api(sandbox_urls["sandbox"]))
    pending = stats["pending"] + max(0, produced - stats["consumed"])
    skipped = stats["skipped"] + stats.get("stale", 0)
    print(
        f"demo: produced={produced} delivered={stats['delivered']} skipped={skipped} "
        f"dead_lettered={stats['dead_lettered']} pending={pending}",
        flush=True,
    )
    return 0 if pending == 0 else 1


@contextlib.contextmanager
def _stack(args: argparse.Namespace) -> Iterator[tuple[ConnectorConfig, str, dict[str, str]]]:
    """Broker, schema registry, sandbox; yields the config pointed at them."""
    from connector.devkafka.broker import create_topics, kafka_cluster
    from connector.devkafka.registry import KIND, schema_registry
    from connector.devkafka.sandbox_process import SandboxProcess

    api_key = "demo-" + secrets.token_hex(8)
    say("starting Kafka and the schema registry (the first run fetches both from Maven Central) ...")
    with kafka_cluster() as bootstrap, schema_registry() as registry_url:
        say(f"kafka at {bootstrap}")
        say(f"schema registry ({KIND}) at {registry_url}")
        sandbox = SandboxProcess(
            "--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.latency_ms // 2), api_key=api_key
        )
        say(f"Attentive sandbox at {sandbox.url}")
        try:
            env = {
                # The demo's own stack, whatever the shell points at (only the broker may be your own).
                **{k: v for k, v in os.environ.items() if k != "ATTENTIVE_API_KEY_FILE"},
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "KAFKA_GROUP_ID": f"attentive-connector-demo-{int(time.time())}",
                "SCHEMA_REGISTRY_URL": registry_url,
                "ATTENTIVE_API_BASE_URL": sandbox.url,
                "ATTENTIVE_API_KEY": api_key,
                "METRICS_PORT": str(args.metrics_port),
            }
            config = load_config(args.config, env=env)
            topics = list(config.topics)
            create_topics(bootstrap, topics + [config.dlq_topic(t) for t in topics], partitions=3)
            # On a cluster that already has data in these topics, count only this run's records.
            _start_group_at_end(bootstrap, config.kafka.group_id, topics)
            yield config, bootstrap, {"sandbox": sandbox.url, "registry": registry_url}
        finally:
            sandbox.stop()


def _start_group_at_end(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """Commit the demo group's offsets at the topics' current ends, so it reads only what the demo produces."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        offsets: list[TopicPartition] = []
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            offsets.extend(
                TopicPartition(topic, p, _end_offset(consumer, TopicPartition(topic, p))) for p in partitions
            )
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def _end_offset(consumer: Any, tp: Any, timeout_s: float = 30.0) -> int:
    """The partition's high watermark; a just-created topic may briefly answer "not leader", so retry."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=5)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _produce(config: ConnectorConfig, bootstrap: str, args: argparse.Namespace) -> int:
    """Sample events per topic, plus ``--bad`` records per topic that can never be delivered."""
    from confluent_kafka import Producer

    from connector import samples

    total = 0
    for topic in config.topics:
        records = list(samples.generate(topic, args.count, seed=args.seed))
        total += samples.produce(config, topic, records, bootstrap=bootstrap)
    if args.bad:
        # Bytes that are not Avro at all: decoded → permanent error → dead-letter topic.
        raw = Producer({"bootstrap.servers": bootstrap})
        for topic in config.topics:
            for i in range(args.bad):
                raw.produce(
                    topic, key=f"bad-{i}".encode(), value=b"\x00not avro at all" if i % 2 else b"{json?}"
                )
                total += 1
        raw.flush(30)
    return total


async def _run_connector(
    config: ConnectorConfig, produced: int, args: argparse.Namespace, urls: dict[str, str]
) -> dict[str, int]:
    from connector.observability.health import HealthServer
    from connector.pipeline.connector import Connector

    connector = Connector(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same server `run` starts: what the demo prints must answer.
    server = HealthServer(connector.metrics, connector.health, host="127.0.0.1", port=args.metrics_port)
    await server.start()
    task = asyncio.create_task(connector.run(stop))
    say(f"connector running; metrics on {server.url}/metrics (also /healthz, /readyz)")
    deadline = time.monotonic() + args.timeout
    last_report = 0.0
    try:
        while not task.done() and time.monotonic() < deadline and not stop.is_set():
            s = connector.stats()
            if s["consumed"] >= produced and s["pending"] == 0:
                break
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                say(_progress(s, produced))
            await asyncio.sleep(0.2)
        final = connector.stats()
        if args.keep_running and not stop.is_set():
            say(_progress(final, produced))
            say(
                f"everything stays up: metrics {server.url}/metrics, {server.url}/healthz, {server.url}/readyz,"
            )
            say(f"sandbox journal {urls['sandbox']}/__sandbox/requests and {urls['sandbox']}/__sandbox/stats")
            say("press Ctrl-C to stop")
            await stop.wait()
    finally:
        stop.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await server.stop()
    return {k: int(v) for k, v in connector.stats().items()}


def _calls_by_api(sandbox_url: str) -> str:
    """Requests Attentive (the sandbox) answered 2xx, per API, e.g. ``identity=12 privacy.delete=3``."""
    import httpx

    from connector.attentive.endpoints import BY_PATH

    try:
        by_path = httpx.get(f"{sandbox_url}/__sandbox/stats", timeout=10).json()["by_path"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"attentive calls: unknown (sandbox stats unreadable: {type(exc).__name__})"
    counts = {
        str(BY_PATH[path]): sum(n for status, n in by_status.items() if status.startswith("2"))
        for path, by_status in by_path.items()
        if path in BY_PATH
    }
    return "attentive calls answered 2xx: " + " ".join(f"{api}={n}" for api, n in sorted(counts.items()))


def _progress(s: dict[str, Any], produced: int) -> str:
    return (
        f"progress: consumed={s['consumed']}/{produced} delivered={s['delivered']} skipped={s['skipped']} "
        f"dead_lettered={s['dead_lettered']} pending={s['pending']}"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(argparse.ArgumentParser().parse_args()))
