"""The real parts a benchmark run stands on: a local Kafka broker, a real schema registry (Apicurio Registry's
Confluent-compatible API), sandboxes, and the connector config pointing at them.

Everything is started once per run and stopped at the end, whatever happens in between.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.attentive.endpoints import Endpoint
from connector.devkafka.broker import create_topics, kafka_cluster
from connector.devkafka.sandbox_process import SandboxProcess

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "config" / "connector.yaml"
TOPICS = ("orders", "loyalty", "signups", "privacy")
PARTITIONS = 3

# The sandbox as a ceiling: no request validation, no rate limits, no latency, a small journal (counting is
# done with /__sandbox/stats, so a million bodies are not kept in its memory).
UNLIMITED_RATE = 1_000_000.0  # requests/s: no client-side limit in practice
FAST_SANDBOX_FLAGS = ("--no-validate", "--no-rate-limit", "--journal-max", "1000")
# The sandbox shaped like Attentive: its published limits (the sandbox's defaults), answers after 100 ± 50 ms
# (the sandbox's latency is fixed + a uniform 0..jitter extra: 50 + 0..100 ms; until 2026-12-03 it was
# 100 + 0..50, i.e. 100-150 ms, mean 125, which the runs before then measured).
SHAPED_MIN_ANSWER_MS = 50.0
SHAPED_SANDBOX_FLAGS = ("--latency-ms", f"{SHAPED_MIN_ANSWER_MS:g}", "--jitter-ms", "100", "--seed", "7")


@dataclass
class Stack:
    """Running infrastructure for one benchmark run."""

    bootstrap: str
    registry_url: str | None
    workdir: Path
    api_key: str = field(default_factory=lambda: "bench-" + secrets.token_hex(12), repr=False)
    # librdkafka settings added to every connector config (``--kafka-client``), for tuning experiments.
    kafka_client: dict[str, str] = field(default_factory=dict)
    # Dotted config paths set in every connector config (``--connector-set``), e.g. delivery.max_in_flight.
    overrides: dict[str, Any] = field(default_factory=dict)
    _sandboxes: dict[tuple[str, ...], SandboxProcess] = field(default_factory=dict, repr=False)

    def sandbox(self, *flags: str) -> SandboxProcess:
        """A sandbox with these flags, started on first use and shared by later callers."""
        if flags not in self._sandboxes:
            self._sandboxes[flags] = SandboxProcess(*flags, api_key=self.api_key)
        return self._sandboxes[flags]

    def stop_sandbox(self, *flags: str) -> None:
        sb = self._sandboxes.pop(flags, None)
        if sb is not None:
            sb.stop()

    def close(self) -> None:
        for sb in list(self._sandboxes.values()):
            with contextlib.suppress(Exception):
                sb.stop()
        self._sandboxes.clear()

    def connector_config(
        self, name: str, *, base_url: str, group_id: str, metrics_port: int, unlimited: bool = False
    ) -> Path:
        """Write the shipped config, pointed at this stack, as ``<workdir>/<name>.yaml`` and return its path.

        The shipped delivery settings are kept: the benchmark measures the connector as users run it.
        Paths in the shipped file are made absolute so the copy can live anywhere. ``unlimited`` lifts the
        connector's own client-side rate limits (for the runs against the sandbox without limits; otherwise
        subscribe's 10/s would set the pace of the whole drain).
        """
        raw: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
        base = SHIPPED_CONFIG.parent
        for topic in raw.get("topics", {}).values():
            key = "schema" if "schema" in topic else "schema_file"
            topic[key] = str((base / topic[key]).resolve())
        rules_key = "rules" if "rules" in raw else "rules_file"
        raw[rules_key] = str((base / raw.get(rules_key, "rules.yaml")).resolve())
        kafka = raw.setdefault("kafka", {})
        kafka["bootstrap_servers"] = self.bootstrap
        kafka["group_id"] = group_id
        if self.kafka_client:
            kafka["client"] = {**(kafka.get("client") or {}), **self.kafka_client}
        if self.registry_url:
            kafka["schema_registry"] = {**(kafka.get("schema_registry") or {}), "url": self.registry_url}
        att = raw.setdefault("attentive", {})
        att["base_url"] = base_url
        att.pop("api_key_file", None)
        if unlimited:
            att["rate_limits"] = {str(e): UNLIMITED_RATE for e in Endpoint}
        raw.setdefault("metrics", {})["port"] = metrics_port
        raw["metrics"]["host"] = "127.0.0.1"
        # Logging at WARNING: a log line per record would measure the log handler, not the connector.
        raw["logging"] = {"format": "json", "level": "WARNING"}
        for dotted, value in self.overrides.items():
            node = raw
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return path


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Broker (+ topics), schema registry; sandboxes start on demand. Everything stops on exit."""
    with kafka_cluster() as bootstrap:
        create_topics(bootstrap, [*TOPICS, *(f"{t}.dlq" for t in TOPICS)], partitions=PARTITIONS)
        with _schema_registry() as registry_url:
            stack = Stack(bootstrap=bootstrap, registry_url=registry_url, workdir=workdir)
            try:
                yield stack
            finally:
                stack.close()


def _schema_registry() -> contextlib.AbstractContextManager[str]:
    from connector.devkafka.apicurio import schema_registry

    return schema_registry()
