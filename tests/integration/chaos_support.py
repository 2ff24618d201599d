"""Helpers for the multi-replica chaos test (``tests/integration/test_chaos.py``).

* :class:`ChaosSize` — the run's size: ``CHAOS_SIZE=full`` (``make chaos``: >= 10,000 records) or the CI-sized
  default (``make test``: fewer records, the same events and assertions).
* :class:`RestartableBroker` — a broker of the chaos test's own (the session broker is shared with other tests,
  so it is never killed): ``kill9()`` sends SIGKILL, ``restart()`` starts the same command on the same data
  folder and port, as a pod restarted on its volume would.
* :class:`Fleet` — the connector replicas (``python -m connector run`` subprocesses) in one group.
* :func:`account` — every record classified: delivered per ``X-Record-Id`` (sandbox journal), dead-lettered
  (with its headers), skipped as ``route`` says, or lost.

Everything is real: Apache Kafka (KRaft), the Attentive sandbox at Attentive's rate limits, Apicurio Registry
(behind :class:`~tests.integration.registry_proxy.RegistryProxy` for the outage), the connector's own CLI.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from connector.devkafka.broker import LocalKafka, create_topics, start_local_kafka, wait_until_ready
from tests.integration.engine_support import ConnectorProcess, JournalView, Message, Stack

BAD_KEY_PREFIX = b"chaos-bad-"


@dataclass(frozen=True)
class ChaosSize:
    """How big a run is. ``registry_outage_s`` is how long the registry stays down (a fault's length, not a
    wait for a result: the test still waits for the replicas to have been refused)."""

    name: str
    counts: dict[str, int]
    partitions: int
    bad_records: int
    registry_outage_s: float
    timeout_s: float

    @property
    def records(self) -> int:
        return sum(self.counts.values()) + self.bad_records

    @classmethod
    def from_env(cls) -> ChaosSize:
        size = os.environ.get("CHAOS_SIZE", "ci")
        if size == "full":
            return cls("full", {"orders": 5000, "loyalty": 3500, "signups": 1500}, 6, 30, 20.0, 1500.0)
        if size == "ci":
            return cls("ci", {"orders": 1500, "loyalty": 1100, "signups": 300}, 6, 12, 6.0, 240.0)
        raise ValueError("environment variable CHAOS_SIZE: expected 'ci' or 'full'")


class RestartableBroker:
    """A local single-node KRaft broker that can be killed with SIGKILL and restarted on its data folder."""

    def __init__(self) -> None:
        self.kafka: LocalKafka = start_local_kafka(num_partitions=6)
        self.bootstrap = self.kafka.bootstrap_servers
        self.restarts = 0

    def kill9(self) -> None:
        proc = self.kafka.process
        os.killpg(proc.pid, signal.SIGKILL)  # the JVM runs in its own session (start_new_session)
        proc.wait(timeout=30)

    def restart(self, timeout_s: float = 120) -> None:
        """Start the same command (same ``server.properties``: port, node id, ``log.dirs``) again."""
        old = self.kafka.process
        out = (self.kafka.workdir / "broker.out").open("ab")
        self.kafka.process = subprocess.Popen(
            old.args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.restarts += 1
        deadline = time.monotonic() + timeout_s
        wait_until_ready(self.bootstrap, timeout_s=timeout_s, process=self.kafka.process)
        self._wait_partitions_led(deadline)

    def _wait_partitions_led(self, deadline: float) -> None:
        """Until every partition answers ListOffsets: the broker answers metadata before it leads the
        partitions it recovers after a SIGKILL (NOT_LEADER_FOR_PARTITION meanwhile)."""
        c = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": f"led-{uuid.uuid4().hex}", "log_level": 0}
        )
        try:
            pending = [
                TopicPartition(t, p)
                for t, md in c.list_topics(timeout=10).topics.items()
                if not t.startswith("__")
                for p in md.partitions
            ]
            while pending:
                tp = pending[0]
                try:
                    c.get_watermark_offsets(tp, timeout=2)
                    pending.pop(0)
                except KafkaException as exc:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"{tp.topic}/{tp.partition} not led after the restart: {exc}"
                        ) from exc
                    time.sleep(0.2)
        finally:
            c.close()

    def make_topic(self, partitions: int = 6, prefix: str | None = None) -> str:
        name = f"{prefix or 'chaos'}-{uuid.uuid4().hex[:8]}"
        create_topics(self.bootstrap, [name], partitions=partitions)
        return name

    def stop(self) -> None:
        self.kafka.stop()


def set_topic_config(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


def uncommitted(bootstrap: str, group: str, topics: Iterable[str]) -> dict[str, int]:
    """``topic/partition`` -> records between the group's committed offset and the end (empty: all done)."""
    out: dict[str, int] = {}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        for topic in topics:
            ends = end_offsets(bootstrap, topic)
            for tp in c.committed([TopicPartition(topic, p) for p in ends], timeout=10):
                behind = ends[tp.partition] - max(tp.offset, 0)
                if behind:
                    out[f"{topic}/{tp.partition}"] = behind
    finally:
        c.close()
    return out


@dataclass
class Fleet:
    """The replicas of one group; ``events`` is the run's timeline for the report."""

    stack: Stack
    extra_env: dict[str, str] = field(default_factory=dict)
    live: dict[str, ConnectorProcess] = field(default_factory=dict)
    gone: list[ConnectorProcess] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    kills: list[tuple[float, str, int]] = field(default_factory=list)  # (unix time, what, replicas hit)
    started: float = field(default_factory=time.monotonic)
    _n: int = 0

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def kill_event(self, what: str, hit: int) -> None:
        """Mark a crash (replica or broker) that may redeliver: duplicates after it are attributed to it."""
        self.kills.append((time.time(), what, hit))
        self.note(what)

    def start(self, config_path: Path | None = None) -> ConnectorProcess:
        """Start a replica (``config_path``: another config file for this one, e.g. a shorter session)."""
        self._n += 1
        name = f"replica-{self._n}"
        stack = self.stack if config_path is None else replace(self.stack, config_path=config_path)
        proc = ConnectorProcess(stack, name=name, extra_env=self.extra_env)
        proc.wait_health_url()
        self.live[name] = proc
        self.note(f"start {name} ({len(self.live)} replicas)")
        return proc

    def sigkill(self, name: str) -> None:
        proc = self.live.pop(name)
        proc.kill()
        self.gone.append(proc)
        self.kill_event(f"SIGKILL {name} ({len(self.live)} replicas)", 1)

    def sigterm(self, name: str) -> int:
        proc = self.live.pop(name)
        code = proc.terminate()
        self.gone.append(proc)
        self.note(f"SIGTERM {name} -> exit {code} ({len(self.live)} replicas)")
        return code

    def metric(self, name: str, **labels: str) -> float:
        """A metric summed over the live replicas (a replica that does not answer counts 0)."""
        total = 0.0
        for proc in list(self.live.values()):
            try:
                total += proc.metric(name, **labels)
            except Exception:  # noqa: BLE001, S112 — a replica restarting its health server, or just killed
                continue
        return total

    def assert_alive(self) -> None:
        for name, proc in self.live.items():
            assert proc.alive(), f"{name} exited {proc.proc.returncode}:\n{proc.log_text()[-4000:]}"

    def stop_all(self) -> None:
        for proc in [*self.live.values(), *self.gone]:
            proc.stop_quietly()


@dataclass
class Accounting:
    """Every record of the source topics, classified."""

    delivered: set[str]
    dead_lettered: set[str]
    skipped: set[str]
    lost: list[str]
    dead_letter_problems: list[str]
    skipped_but_sent: list[str]

    @property
    def total(self) -> int:
        return len(self.delivered) + len(self.dead_lettered) + len(self.skipped) + len(self.lost)


_DLQ_HEADERS = (
    "dlq.original.topic",
    "dlq.original.partition",
    "dlq.original.offset",
    "dlq.rule",
    "dlq.error.class",
    "dlq.error.reason",
    "dlq.attempts",
    "dlq.connector.version",
)


def account(routes: dict[str, Any], view: JournalView, dead: dict[str, Message], bad: set[str]) -> Accounting:
    """``routes``: record id -> its :class:`~connector.types.RouteResult`; ``bad``: records made undecodable
    on purpose (they must be dead-lettered)."""
    delivered: set[str] = set()
    skipped: set[str] = set()
    lost: list[str] = []
    problems: list[str] = []
    sent_skipped: list[str] = []
    for rid, m in dead.items():
        missing = [h for h in _DLQ_HEADERS if h not in m.headers]
        if missing:
            problems.append(f"{rid}: dead letter without {', '.join(missing)}")
    for rid, result in routes.items():
        if rid in dead:
            continue
        if rid in bad or result.error is not None:
            lost.append(rid)  # had to be dead-lettered and is not
            continue
        if not result.calls:
            skipped.add(rid)
            if rid in view.ok_by_call:
                sent_skipped.append(rid)
            continue
        if all(view.ok_by_call.get(c.record_id) for c in result.calls):
            delivered.add(rid)
        else:
            lost.append(rid)
    problems.extend(
        f"{rid}: no dlq.error.reason"
        for rid in bad
        if rid in dead and dead[rid].headers.get("dlq.error.reason", b"") == b""
    )
    return Accounting(delivered, set(dead) & set(routes), skipped, lost, problems, sent_skipped)


def duplicate_bound(
    hit: int, *, max_in_flight: int, deliveries_per_s: float, commit_interval_s: float
) -> int:
    """The issue's bound for one kill: the in-flight window of the replicas it hit (a broker kill hits every
    live one) plus one commit interval's deliveries."""
    return hit * max_in_flight + math.ceil(deliveries_per_s * commit_interval_s)


def duplicates_by_cause(entries: list[dict[str, Any]], kills: list[tuple[float, str, int]]) -> dict[str, int]:
    """Each 2xx answer beyond a call's first, attributed to the latest kill before it (``"before any kill"``
    otherwise: a rebalance or a clean stop that resent something)."""
    out: dict[str, int] = {"before any kill": 0, **{what: 0 for _t, what, _n in kills}}
    seen: set[str] = set()
    for e in sorted(entries, key=lambda e: float(e["time"])):
        if not 200 <= int(e["status"]) < 300 or not e.get("record_id"):
            continue
        rid = e["record_id"]
        if rid not in seen:
            seen.add(rid)
            continue
        cause = "before any kill"
        for when, what, _n in kills:
            if when <= float(e["time"]):
                cause = what
        out[cause] += 1
    return out


def write_evidence(path: Path, text: str) -> None:
    path.write_text(text)
