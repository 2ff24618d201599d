"""The shipped alert rules and dashboard queries, evaluated by a real Prometheus scraping a running connector.

Prometheus (Debian's, see :mod:`tests.integration.prometheus_server`) scrapes the connector every second with
``ops/prometheus/alerts.yml`` loaded, while the test drives real conditions through the real parts: the
connector stopped (no target up), a dead-letter topic refusing writes, undecodable records, a 401 window, an
Attentive outage that stalls the consumer (both the sandbox's fault injection), and a backlog beyond the lag
threshold that keeps growing behind that outage. For each, the matching alerts must go firing through
Prometheus's HTTP API and return to quiet once the condition ends. At the end of the first test, every PromQL
query of the Grafana dashboard must return data for this connector.

**Time compression, for this test only**: the shipped rules wait minutes (``for: 10m``, ``rate(...[10m])``).
Here every duration in the rules file — ``for:``, range selectors and ``offset`` — is divided by 60 (10m →
10s) and written to a temporary rules file; expressions, thresholds and labels are untouched. Scraping and
rule evaluation run every second, so the compressed windows still hold several samples. The scrape adds the
``namespace`` and ``pod`` target labels a Kubernetes ServiceMonitor adds. Grafana's ``$__rate_interval``
is 4 × the scrape interval here (4s), its own rule for a 1 s scrape.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from connector import samples
from connector.attentive.endpoints import Endpoint
from connector.avro.encoder import Encoder
from connector.devkafka.broker import free_port
from tests.integration.engine_support import (
    ConnectorProcess,
    Stack,
    make_stack,
    produce_raw,
    produce_samples,
    wait_until,
)
from tests.integration.prometheus_server import PrometheusServer, start_prometheus
from tests.metric_catalog import dashboard_queries
from tests.support import REPO, SandboxProcess

# serial: its bounds are real-time rates and timings, so it runs alone (see the marker in pyproject.toml)
pytestmark = [pytest.mark.integration, pytest.mark.serial]

ALERTS_FILE = REPO / "ops" / "prometheus" / "alerts.yml"
DASHBOARD_FILE = REPO / "ops" / "grafana" / "attentive-connector.json"
JOB = "attentive-connector"
NAMESPACE = "prom-test"
POD = "attentive-connector-0"
RATE_INTERVAL = "4s"
COMPRESSION = 60

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _compressed(duration: str) -> str:
    """A Prometheus duration divided by :data:`COMPRESSION`, in milliseconds (``10m`` → ``10000ms``)."""
    parts = _DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    total_ms = sum(int(n) * _UNIT_MS[u] for n, u in parts)
    return f"{total_ms // COMPRESSION}ms"


def lag_threshold() -> int:
    """AttentiveConnectorLagHighAndGrowing's threshold as shipped (the chart's default)."""
    rules = [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"]]
    expr = next(r["expr"] for r in rules if r.get("alert") == "AttentiveConnectorLagHighAndGrowing")
    found = re.search(r"attentive_connector:consumer_lag:sum > (\d+)", expr)
    assert found, expr
    return int(found.group(1))


def compress_rules(doc: dict[str, Any]) -> dict[str, Any]:
    """The rules with every ``for``, ``[range]`` and ``offset`` divided by :data:`COMPRESSION`."""
    out = yaml.safe_load(yaml.safe_dump(doc))
    for group in out["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _compressed(str(rule["for"]))
            expr = re.sub(r"\[(\w+)\]", lambda m: f"[{_compressed(m.group(1))}]", rule["expr"])
            rule["expr"] = re.sub(r"\boffset\s+(\w+)", lambda m: f"offset {_compressed(m.group(1))}", expr)
    return out


def test_compression_divides_every_duration_and_keeps_the_rest() -> None:
    doc = yaml.safe_load(ALERTS_FILE.read_text())
    squeezed = compress_rules(doc)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    short = [r for g in squeezed["groups"] for r in g["rules"]]
    assert len(rules) == len(short) >= 9
    by_name = {r.get("alert", r.get("record")): r for r in short}
    assert by_name["AttentiveConnectorStalled"]["for"] == "10000ms"
    assert (
        "rate(attentive_connector_records_processed_total[10000ms])"
        in by_name["AttentiveConnectorStalled"]["expr"]
    )
    assert "offset 10000ms" in by_name["AttentiveConnectorDeadLetters"]["expr"]
    for before, after in zip(rules, short, strict=True):
        assert re.sub(r"\d+m\b", "D", before["expr"]) == re.sub(r"\d+ms\b", "D", after["expr"])
        assert before.get("labels") == after.get("labels")
        assert not re.search(r"\[\d+m\]|offset \d+m\b", after["expr"])


# -- helpers ----------------------------------------------------------------------------------------------


def firing(prom: PrometheusServer, name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.alerts()
        if a["labels"].get("alertname") == name
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def active(prom: PrometheusServer, name: str) -> list[dict[str, Any]]:
    """Alerts of ``name`` pending or firing (quiet = none)."""
    return [a for a in prom.alerts() if a["labels"].get("alertname") == name]


def wait_firing(prom: PrometheusServer, name: str, timeout_s: float = 45, **labels: str) -> dict[str, Any]:
    try:
        wait_until(
            lambda: bool(firing(prom, name, **labels)), timeout_s=timeout_s, what=f"{name} firing {labels}"
        )
    except AssertionError as exc:
        # Say what Prometheus saw: the rule's state and the recent values of its expression.
        rule: dict[str, Any] = next(
            (r for g in prom.api("rules")["groups"] for r in g["rules"] if r["name"] == name), {}
        )
        now = time.time()
        seen = prom.api(
            "query_range", query=rule.get("query", "vector(0)"), start=now - 60, end=now, step="2s"
        )
        lag = prom.api(
            "query_range", query="attentive_connector:consumer_lag:sum", start=now - 60, end=now, step="2s"
        )
        raise AssertionError(f"{exc}\nrule: {rule}\nexpr over the last minute: {seen}\nlag: {lag}") from None
    return firing(prom, name, **labels)[0]


def wait_quiet(prom: PrometheusServer, name: str, timeout_s: float = 45) -> None:
    wait_until(lambda: not active(prom, name), timeout_s=timeout_s, what=f"{name} back to quiet")


def set_topic_config(bootstrap: str, topic: str, key: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


class Backlog:
    """Records for one topic from a background producer: a burst, then a trickle until the ``with`` ends.

    The values are the topic's sample records encoded once and produced again and again (each is a new
    record at a new offset), so a backlog of ten thousand costs no encoding time.
    """

    def __init__(self, stack: Any, kind: str, trickle_per_s: float = 50.0) -> None:
        self.topic = stack.topics[kind]
        encoder = Encoder.for_topic(stack.config, self.topic)
        self.values = [encoder.encode(r) for r in samples.generate(kind, 200, seed=11)]
        self.producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 20})
        self.trickle_per_s = trickle_per_s
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _produce(self, n: int) -> None:
        for _ in range(n):
            self.producer.produce(
                self.topic, key=b"backlog", value=self.values[self.produced % len(self.values)]
            )
            self.produced += 1
            if self.produced % 1000 == 0:
                self.producer.poll(0)

    def burst(self, n: int) -> None:
        self._produce(n)
        assert self.producer.flush(30) == 0

    def _trickle(self) -> None:
        while not self._stop.wait(1.0 / self.trickle_per_s):
            self._produce(1)
            self.producer.poll(0)

    def __enter__(self) -> Backlog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert self.producer.flush(30) == 0


def grafana_concrete(expr: str) -> str:
    """A dashboard query as Grafana sends it for this connector's namespace and pod."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$namespace", NAMESPACE)
        .replace("${namespace}", NAMESPACE)
        .replace("$pod", POD)
        .replace("${pod}", POD)
    )


# -- the test -----------------------------------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[PrometheusServer, int]]:
    """Prometheus with the compressed rules, scraping the (not yet started) connector's metrics port."""
    rules = tmp_path / "alerts.compressed.yml"
    rules.write_text(yaml.safe_dump(compress_rules(yaml.safe_load(ALERTS_FILE.read_text())), sort_keys=False))
    metrics_port = free_port()
    prom = start_prometheus(
        tmp_path,
        targets=[f"127.0.0.1:{metrics_port}"],
        job=JOB,
        target_labels={"namespace": NAMESPACE, "pod": POD},
        rule_files=[rules],
    )
    try:
        yield prom, metrics_port
    finally:
        prom.stop()


def test_alerts_fire_and_clear_and_dashboard_queries_return_data(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    sandbox_factory: Callable[..., SandboxProcess],
    prometheus: tuple[PrometheusServer, int],
) -> None:
    prom, metrics_port = prometheus
    started_at = time.time()
    # The sandbox sends Attentive's x-ratelimit-* headers (for the headroom panel) at limits never reached.
    sandbox = sandbox_factory(*[arg for e in Endpoint for arg in ("--rate-limit", f"{e}=5000")])
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["loyalty", "orders"],
        partitions=1,
        # Retry for as long as the outage lasts, so a stalled consumer holds its records (not dead-letters).
        delivery={
            "retry": {"max_attempts": 100_000, "max_age_s": 600, "backoff_base_s": 0.05, "backoff_cap_s": 0.5}
        },
    )
    loyalty, orders = stack.topics["loyalty"], stack.topics["orders"]

    # Every rule loaded and healthy.
    groups = prom.api("rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    shipped = [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"]]
    assert set(loaded) == {r.get("alert", r.get("record")) for r in shipped}
    assert all(r["health"] in ("ok", "unknown") for r in loaded.values()), loaded

    # 1. No connector yet: its target is down.
    wait_firing(prom, "AttentiveConnectorDown")
    proc = ConnectorProcess(stack, extra_env={"METRICS_PORT": str(metrics_port)})
    try:
        proc.wait_health_url()
        wait_until(proc.ready, timeout_s=30, what="connector ready")
        wait_quiet(prom, "AttentiveConnectorDown")
        produce_samples(stack, "loyalty", 20, seed=3)
        produce_samples(stack, "orders", 20, seed=4)
        wait_until(
            lambda: proc.metric("attentive_connector_records_processed_total") >= 40,
            timeout_s=60,
            what="first records finished",
        )

        # 2. The dead-letter topic refuses writes (records larger than it accepts), then accepts them.
        set_topic_config(kafka_bootstrap, stack.dlq("orders"), "max.message.bytes", "64")
        produce_raw(kafka_bootstrap, orders, [(b"bad-1", b"not avro at all"), (b"bad-2", b"\x02\x03")])
        wait_firing(prom, "AttentiveConnectorDeadLetterWriteFailing", topic=orders)
        assert not active(prom, "AttentiveConnectorDeadLetters")  # nothing written to the DLQ yet
        set_topic_config(kafka_bootstrap, stack.dlq("orders"), "max.message.bytes", "1048588")
        dead = wait_firing(prom, "AttentiveConnectorDeadLetters", topic=orders)
        assert dead["labels"]["reason"] and dead["labels"]["namespace"] == NAMESPACE
        assert dead["labels"]["severity"] == "warning"
        wait_quiet(prom, "AttentiveConnectorDeadLetterWriteFailing")
        wait_quiet(prom, "AttentiveConnectorDeadLetters")

        # 3. Attentive refuses the key for a while (the sandbox's 401 window): auth alert and not ready.
        sandbox.set_faults({"unauthorized_for_s": 120})
        produce_samples(stack, "loyalty", 20, seed=5)
        auth = wait_firing(prom, "AttentiveConnectorAuthFailures", namespace=NAMESPACE)
        assert auth["labels"]["severity"] == "critical"
        wait_firing(prom, "AttentiveConnectorNotReady", pod=POD)
        sandbox.set_faults({})  # the key works again
        wait_quiet(prom, "AttentiveConnectorNotReady")
        wait_quiet(prom, "AttentiveConnectorAuthFailures")
        assert not active(prom, "AttentiveConnectorDeadLetters")  # a 401 window dead-letters nothing

        # 4. Attentive answers 503 to everything: nothing finishes while records wait — a stalled consumer.
        sandbox.set_faults({"error_rates": {"503": 1.0}})
        produce_samples(stack, "loyalty", 20, seed=6)
        wait_firing(prom, "AttentiveConnectorApiErrorRatioHigh")
        stalled = wait_firing(prom, "AttentiveConnectorStalled", timeout_s=60, topic=loyalty)
        assert float(stalled["value"]) >= 1  # records waiting
        assert not firing(prom, "AttentiveConnectorStalled", topic=orders)  # nothing waits there
        sandbox.set_faults({})
        wait_quiet(prom, "AttentiveConnectorStalled")
        wait_quiet(prom, "AttentiveConnectorApiErrorRatioHigh")
        assert not active(prom, "AttentiveConnectorDeadLetters")  # held through the outage, not dead-lettered
        wait_until(
            lambda: proc.metric("attentive_connector_buffered_records") == 0,
            timeout_s=60,
            what="everything finished after the outage",
        )

        # 5. Every dashboard query returns data for this connector over the run.
        dashboard = json.loads(DASHBOARD_FILE.read_text())
        exprs = dashboard_queries(dashboard)
        assert len(exprs) > 30
        now = time.time()
        empty = []
        for expr in exprs:
            concrete = grafana_concrete(expr)
            assert "$" not in concrete, concrete
            result = prom.api("query_range", query=concrete, start=started_at, end=now, step="1s")["result"]
            values = [float(v) for series in result for _, v in series["values"]]
            if not any(math.isfinite(v) for v in values):
                empty.append(concrete)
        assert empty == [], "dashboard queries without data:\n" + "\n".join(empty)
        assert NAMESPACE in prom.api(
            "label/namespace/values", **{"match[]": "attentive_connector_build_info"}
        )

        assert proc.terminate() == 0
    finally:
        proc.stop_quietly()
    # 6. The connector gone: down again.
    wait_firing(prom, "AttentiveConnectorDown")


@pytest.fixture
def scraped_connector(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    sandbox: SandboxProcess,
    prometheus: tuple[PrometheusServer, int],
) -> Iterator[tuple[Stack, ConnectorProcess]]:
    """A ready connector on one loyalty partition whose metrics port ``prometheus`` scrapes (retries that
    never give up, so an outage holds a backlog); killed when the test ends if it still runs."""
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["loyalty"],
        partitions=1,
        delivery={
            "retry": {"max_attempts": 100_000, "max_age_s": 600, "backoff_base_s": 0.05, "backoff_cap_s": 0.5}
        },
    )
    proc = ConnectorProcess(stack, extra_env={"METRICS_PORT": str(prometheus[1])})
    try:
        proc.wait_health_url()
        wait_until(proc.ready, timeout_s=30, what="connector ready")
        yield stack, proc
    finally:
        proc.stop_quietly()


def test_lag_alert_fires_while_a_backlog_grows_behind_an_outage(
    sandbox: SandboxProcess,
    prometheus: tuple[PrometheusServer, int],
    scraped_connector: tuple[Stack, ConnectorProcess],
) -> None:
    prom, _ = prometheus
    stack, proc = scraped_connector
    loyalty = stack.topics["loyalty"]
    try:
        sandbox.set_faults({"error_rates": {"503": 1.0}})
        with Backlog(stack, "loyalty") as backlog:
            burst = lag_threshold() + 500
            backlog.burst(burst)
            # First the connector's own lag metric must keep following the backlog as it grows (the trickle
            # adds 250 records in about 5 s): the root cause when the alert below cannot fire.
            try:
                wait_until(
                    lambda: proc.metric("attentive_connector_consumer_lag") >= burst + 250,
                    timeout_s=20,
                    what="consumer_lag following the growing backlog",
                )
            except AssertionError as exc:
                lag = proc.metric("attentive_connector_consumer_lag")
                paused = proc.metric("attentive_connector_paused_partitions")
                raise AssertionError(
                    f"{exc}: consumer_lag={lag:.0f} with {backlog.produced} records produced "
                    f"and {paused:.0f} partition(s) paused"
                ) from None
            wait_firing(prom, "AttentiveConnectorLagHighAndGrowing", timeout_s=60, topic=loyalty)
        sandbox.set_faults({})
        wait_quiet(prom, "AttentiveConnectorLagHighAndGrowing", timeout_s=90)
        assert proc.terminate() == 0
    finally:
        sandbox.set_faults({})
