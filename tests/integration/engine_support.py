"""Helpers for the delivery engine's integration tests: a per-test config on unique topics, sample records,
a connector subprocess, and readers for the source topics, the dead-letter topics and the sandbox journal.

Everything is real: the session's Kafka broker, the sandbox subprocess, ``python -m connector run``.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import confluent_kafka
import httpx
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from connector import samples
from connector.config import ConnectorConfig, load_config
from connector.devkafka.broker import create_topics
from connector.source.kafka import to_source_record
from connector.source.protocols import KafkaMessage
from connector.types import SourceRecord
from tests.support import REPO, SandboxProcess, connector_env
from tests.support import wait_for as wait_until  # noqa: F401  (re-exported for the tests)

KINDS = ("orders", "loyalty", "signups")

# Fast engine timings for tests (each test says when it scales something further).
FAST_DELIVERY: dict[str, Any] = {
    "max_in_flight": 64,
    "commit_interval_s": 0.5,
    "revoke_timeout_s": 10,
    "shutdown_grace_s": 10,
    "auth_check_interval_s": 0.5,
    "retry": {"max_attempts": 8, "max_age_s": 120, "backoff_base_s": 0.05, "backoff_cap_s": 1.0},
    "circuit": {"failure_ratio": 0.8, "window_s": 5, "min_calls": 20, "open_s": 0.5},
}
# The sandbox runs without rate limits; the client's own limiter must not be the bottleneck either.
FAST_RATES = {
    "subscribe": 2000,
    "unsubscribe": 2000,
    "custom_event": 2000,
    "custom_attributes": 2000,
    "ecommerce.product_view": 2000,
    "ecommerce.add_to_cart": 2000,
    "ecommerce.purchase": 2000,
    "identity": 2000,
    "privacy.delete": 2000,
}


@dataclass
class Stack:
    """One test's topics, config file and connections."""

    bootstrap: str
    sandbox: SandboxProcess
    topics: dict[str, str]  # kind -> topic name
    config_path: Path
    group: str

    @property
    def config(self) -> ConnectorConfig:
        return load_config(self.config_path, env=self.env())

    def env(self, **extra: str) -> dict[str, str]:
        return connector_env(self.bootstrap, self.sandbox, **extra)

    def dlq(self, kind: str) -> str:
        return f"{self.topics[kind]}.dlq"


def make_stack(
    tmp_path: Path,
    bootstrap: str,
    make_topic: Callable[..., str],
    sandbox: SandboxProcess,
    *,
    kinds: Iterable[str] = KINDS,
    partitions: int = 3,
    delivery: dict[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
    topic_overrides: dict[str, dict[str, Any]] | None = None,
    registry_url: str | None = None,
) -> Stack:
    """Create topics (and their DLQs) and write a config + rule table for them.

    ``rules`` replaces the shipped rule table (topic names in ``topics:`` are kinds, renamed here);
    by default ``config/rules.yaml`` is used with its topics renamed to this test's topics.
    """
    kinds = tuple(kinds)
    topics = {kind: make_topic(partitions, prefix=kind) for kind in kinds}
    create_topics(bootstrap, [f"{t}.dlq" for t in topics.values()], partitions=1)
    table = (
        rules if rules is not None else yaml.safe_load((REPO / "config" / "rules.yaml").read_text())["rules"]
    )
    renamed = []
    for rule in table:
        r = dict(rule)
        r["topics"] = [topics[t] for t in r.get("topics", []) if t in topics]
        if r["topics"]:
            renamed.append(r)
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump({"rules": renamed}, sort_keys=False))
    topic_cfg: dict[str, Any] = {}
    for kind, name in topics.items():
        topic_cfg[name] = {"schema": str(REPO / "schemas" / f"{kind}.avsc"), "encoding": "raw"}
        topic_cfg[name].update((topic_overrides or {}).get(kind, {}))
    group = f"engine-test-{uuid.uuid4().hex[:8]}"
    cfg: dict[str, Any] = {
        # A short session so a SIGKILLed member's partitions move on in seconds (the broker's minimum is 6 s).
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "client": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": topic_cfg,
        "rules": str(rules_path),
        "attentive": {"base_url": sandbox.url, "rate_limits": FAST_RATES, "timeout_s": 5},
        "delivery": {**FAST_DELIVERY, **(delivery or {})},
        "metrics": {"port": 0, "host": "127.0.0.1"},
        "logging": {"format": "json", "level": "INFO"},
    }
    if registry_url:
        cfg["kafka"]["schema_registry"] = {"url": registry_url}
    config_path = tmp_path / "connector.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return Stack(bootstrap, sandbox, topics, config_path, group)


def produce_samples(stack: Stack, kind: str, count: int, *, seed: int = 0) -> int:
    config = stack.config
    records = list(samples.generate(kind, count, seed=seed))
    return samples.produce(config, stack.topics[kind], records, bootstrap=stack.bootstrap)


def produce_raw(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]], partition: int = 0
) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for key, value in items:
        p.produce(topic, key=key, value=value, partition=partition)
    assert p.flush(30) == 0


def consumed_record(msg: confluent_kafka.Message) -> SourceRecord:
    """A message a consumer returned, read the way the connector reads it (``to_source_record``).

    The cast is a narrowing: confluent-kafka's stub types ``Message.headers()`` for messages built to produce
    too (a dict, or str values); a consumed message's headers are always a list of ``(str, bytes | None)``,
    which is what :class:`KafkaMessage` says.
    """
    return to_source_record(cast(KafkaMessage, msg))


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int | None

    @classmethod
    def of(cls, msg: confluent_kafka.Message) -> Message:
        """A consumed confluent-kafka message (:func:`consumed_record`)."""
        r = consumed_record(msg)
        return cls(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers), r.timestamp_ms)

    @property
    def record_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def source_record(self) -> SourceRecord:
        return SourceRecord(
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            tuple(self.headers.items()),
            self.timestamp_ms,
        )


def read_all(bootstrap: str, topic: str, *, timeout_s: float = 30) -> list[Message]:
    """Every record currently in ``topic`` (up to the high watermarks), without committing anything."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
        c.assign([TopicPartition(topic, p, lo) for p, (lo, _hi) in ends.items()])
        remaining = {p for p, (lo, hi) in ends.items() if hi > lo}
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                msg = Message.of(m)
                if msg.offset >= ends[msg.partition][1]:
                    continue
                out.append(msg)
                if msg.offset + 1 >= ends[msg.partition][1]:
                    remaining.discard(msg.partition)
        assert not remaining, f"could not read {topic} to its end"
        return out
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


# -- the sandbox journal -------------------------------------------------------------------------------------


@dataclass
class JournalView:
    entries: list[dict[str, Any]]
    ok_by_call: dict[str, int] = field(default_factory=dict)  # call id -> number of 2xx answers
    first_ok_index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, sandbox: SandboxProcess) -> JournalView:
        entries = [e for e in sandbox.journal() if e.get("record_id")]
        view = cls(entries)
        for i, e in enumerate(entries):
            if 200 <= int(e["status"]) < 300:
                rid = e["record_id"]
                view.ok_by_call[rid] = view.ok_by_call.get(rid, 0) + 1
                view.first_ok_index.setdefault(rid, i)
        return view

    def duplicates(self) -> int:
        """2xx answers beyond the first, over all calls."""
        return sum(n - 1 for n in self.ok_by_call.values() if n > 1)


def expected_calls(stack: Stack, messages: list[Message]) -> dict[str, list[str]]:
    """record id -> the call ids its current rules make (empty: skipped or dead-lettered at routing)."""
    from connector.rules.router import Router

    router = Router.from_config(stack.config)
    out: dict[str, list[str]] = {}
    for m in messages:
        result = router.route(m.source_record())
        out[m.record_id] = [c.record_id for c in result.calls]
    return out


# -- the connector subprocess --------------------------------------------------------------------------------


class ConnectorProcess:
    """``python -m connector run --config FILE`` with the test's environment; stderr is collected."""

    def __init__(
        self, stack: Stack, *, name: str = "connector", extra_env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.lines: collections.deque[str] = collections.deque(maxlen=20000)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(stack.config_path)],
            cwd=REPO,
            env=stack.env(**(extra_env or {})),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.log_path = stack.config_path.parent / f"{name}.log"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.health_url: str | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.log_path.open("w") as keep:  # kept in the test's tmp dir for post-mortems
            for line in self.proc.stderr:
                self.lines.append(line)
                keep.write(line)
                keep.flush()

    def messages(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line.rstrip()})
        return out

    def log_text(self) -> str:
        return "".join(self.lines)

    def wait_health_url(self, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.messages():
                msg = str(m.get("message", ""))
                if msg.startswith("health and metrics on "):
                    self.health_url = msg.split(" ")[4]
                    return self.health_url
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start its health server:\n{self.log_text()[-4000:]}")

    def ready(self) -> bool:
        url = self.health_url or self.wait_health_url()
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching ``labels`` from ``/metrics``."""
        url = self.health_url or self.wait_health_url()
        text = httpx.get(f"{url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.log_text()[-4000:]}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def all_accounted(
    view: JournalView, calls: dict[str, list[str]], dead: set[str], skipped_ok: set[str] | None = None
) -> list[str]:
    """Record ids NOT yet accounted for: every call 2xx, or the record in its DLQ, or routed to no call."""
    missing = []
    for rid, call_ids in calls.items():
        if rid in dead:
            continue
        if not call_ids:
            continue  # skipped / stale / dead-lettered at routing (checked separately)
        if not all(view.ok_by_call.get(c) for c in call_ids):
            missing.append(rid)
    return missing


def dead_letter_ids(bootstrap: str, dlq_topics: Iterable[str]) -> dict[str, Message]:
    out: dict[str, Message] = {}
    for t in dlq_topics:
        for m in read_all(bootstrap, t):
            h = m.headers
            rid = f"{h['dlq.original.topic'].decode()}/{h['dlq.original.partition'].decode()}/{h['dlq.original.offset'].decode()}"
            out[rid] = m
    return out


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
