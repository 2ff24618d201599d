"""Several replicas sharing one API key, under fire: nothing lost, duplicates bounded, the shared budget holds.

Real parts only: a broker of this test's own (Apache Kafka 4.1, KRaft — it gets killed, so not the session's),
the Attentive sandbox at Attentive's published rate limits with 25 % injected 5xx and latency, Apicurio Registry
behind a forwarding proxy that answers 503 on demand (the stand-in is only the outage switch), and
``python -m connector run`` replicas in one consumer group, all with the same key. Topics: orders, loyalty and
signups with 6 partitions each, Confluent wire format (schemas in the registry), plus undecodable records that
must be dead-lettered.

Timeline (each step waits for a condition — progress in the sandbox journal, an assignment, a metric):
1 replica → the registry answers 503 and two replicas join (1 → 3; the new ones cannot decode until it is back)
→ the orders dead-letter topic refuses writes while undecodable records arrive → one replica stops (SIGTERM,
3 → 2) → one is SIGKILLed and replaced → the broker is killed with SIGKILL and restarted on its data folder →
drain. Then every record is accounted for — delivered (every call 2xx per ``X-Record-Id``), dead-lettered with
its headers, or skipped as ``route`` says — with 0 lost, the group's committed offset at the end of every
partition, duplicate 2xx answers within the issue's bound per kill, and at most 0.5 % of requests answered 429.

``CHAOS_SIZE=full`` (``make chaos``) runs >= 10,000 records; the default is the CI-sized run of ``make test``.
Injected faults are 500/503 only, so every 429 in the journal is the sandbox's rate limit: the share measures the
replicas' shared budget, not the fault mix.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from connector import samples
from connector.rules.router import Router
from tests.integration.chaos_support import (
    BAD_KEY_PREFIX,
    ChaosSize,
    Fleet,
    RestartableBroker,
    account,
    duplicate_bound,
    duplicates_by_cause,
    set_topic_config,
    uncommitted,
)
from tests.integration.engine_support import (
    KINDS,
    JournalView,
    dead_letter_ids,
    make_stack,
    produce_raw,
    read_all,
    wait_until,
)
from tests.integration.registry_proxy import RegistryProxy
from tests.support import SandboxProcess

# serial: its bounds are real-time rates and timings, so it runs alone (see the marker in pyproject.toml)
pytestmark = [pytest.mark.integration, pytest.mark.serial]

FAULTS = {"error_rates": {"500": 0.13, "503": 0.12}, "latency_ms": 10, "jitter_ms": 20}
MAX_IN_FLIGHT = 64
COMMIT_INTERVAL_S = 0.5
DLQ_DEFAULT_MAX_BYTES = "1048588"
# Kafka's default session timeout (45 s): the broker restart (~15 s) stays inside it, as a rolling broker restart
# does in production, so the members keep their partitions and commit what they finished meanwhile. With a
# session shorter than the outage (CHAOS_SESSION_TIMEOUT_MS=6000) every partition is lost and everything
# delivered during the outage is sent again — measured and reported in the README ("Several replicas").
SIZE = ChaosSize.from_env()
SESSION_TIMEOUT_MS = int(os.environ.get("CHAOS_SESSION_TIMEOUT_MS", "45000"))
# The replica that gets SIGKILLed joins with a short session (session timeouts are per member): its partitions
# move to the replacement ~10 s after the kill instead of 45 s — a wait that proves nothing. It is dead before the
# broker restart, the one event that needs the long session.
VICTIM_SESSION_TIMEOUT_MS = min(10000, SESSION_TIMEOUT_MS)
LOG_LEVEL = os.environ.get("CHAOS_LOG_LEVEL", "")


@pytest.fixture
def chaos_broker() -> Iterator[RestartableBroker]:
    broker = RestartableBroker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.timeout(600 if SIZE.name == "ci" else 3600)
def test_chaos_replicas_rebalances_broker_restart_registry_and_dlq_outages(
    tmp_path: Path,
    chaos_broker: RestartableBroker,
    schema_registry_url: str,
    sandbox_factory: Callable[..., SandboxProcess],
    record_property: Callable[[str, object], None],
) -> None:
    size = SIZE
    bootstrap = chaos_broker.bootstrap
    sandbox = sandbox_factory()  # Attentive's published rate limits, one budget for every replica's key
    proxy = RegistryProxy(schema_registry_url)
    fleet: Fleet | None = None
    try:
        stack = make_stack(
            tmp_path,
            bootstrap,
            chaos_broker.make_topic,
            sandbox,
            partitions=size.partitions,
            delivery={"max_in_flight": MAX_IN_FLIGHT, "commit_interval_s": COMMIT_INTERVAL_S},
            topic_overrides={k: {"encoding": "confluent"} for k in KINDS},
            registry_url=proxy.url,
        )
        cfg = yaml.safe_load(stack.config_path.read_text())
        del cfg["attentive"]["rate_limits"]  # the connector's defaults: Attentive's published limits
        cfg["kafka"]["client"]["session.timeout.ms"] = SESSION_TIMEOUT_MS
        stack.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cfg["kafka"]["client"]["session.timeout.ms"] = VICTIM_SESSION_TIMEOUT_MS
        victim_config = stack.config_path.with_name("connector-victim.yaml")
        victim_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        config = stack.config
        for i, kind in enumerate(KINDS):
            records = list(samples.generate(kind, size.counts[kind], seed=700 + i))
            assert samples.produce(config, stack.topics[kind], records, bootstrap=bootstrap) == len(records)
        router = Router.from_config(config)
        deliverable = 0
        for kind in KINDS:
            for m in read_all(bootstrap, stack.topics[kind]):
                deliverable += bool(router.route(m.source_record()).calls)

        def delivered_records() -> int:
            view = JournalView.of(sandbox)
            return len({"/".join(rid.split("/")[:3]) for rid in view.ok_by_call})  # call id -> record id

        def reach(fraction: float) -> None:
            running = fleet  # bound once: a nested function does not see the outer narrowing
            assert running is not None

            def ok() -> bool:
                running.assert_alive()
                return delivered_records() >= fraction * deliverable

            wait_until(ok, timeout_s=size.timeout_s, interval_s=1.0, what=f"{fraction:.0%} delivered")

        sandbox.set_faults(FAULTS)
        # CHAOS_LOG_LEVEL=DEBUG: the replicas log every commit sent and answered (their logs stay in tmp_path).
        fleet = Fleet(stack, extra_env={"LOG_LEVEL": LOG_LEVEL} if LOG_LEVEL else {})
        started = time.monotonic()
        fleet.start()
        reach(0.10)

        # The registry is down while two replicas join: they get partitions they cannot decode yet.
        proxy.fail_with(503)
        refused_from = proxy.request_count
        outage_started = time.monotonic()
        fleet.note("registry answers 503")
        joined = [fleet.start(victim_config), fleet.start()]  # joined[0] is SIGKILLed later
        wait_until(
            lambda: all(
                p.metric("attentive_connector_rebalances_total", kind="assigned") >= 1 for p in joined
            ),
            timeout_s=60,
            what="the new replicas assigned partitions",
        )
        wait_until(
            lambda: (
                proxy.request_count - refused_from >= 3
                and time.monotonic() - outage_started >= size.registry_outage_s
            ),
            timeout_s=60,
            what="the replicas refused by the registry",
        )
        proxy.fail_with(None)
        fleet.note(f"registry back after {time.monotonic() - outage_started:.0f}s")
        reach(0.30)

        # The orders dead-letter topic refuses every write while undecodable records arrive.
        orders = stack.topics["orders"]
        set_topic_config(bootstrap, stack.dlq("orders"), "max.message.bytes", "64")
        fleet.note("orders DLQ unwritable")
        for p in range(size.partitions):
            n = size.bad_records // size.partitions
            produce_raw(
                bootstrap, orders, [(BAD_KEY_PREFIX + f"{p}-{i}".encode(), b"not avro") for i in range(n)], p
            )
        wait_until(
            lambda: fleet.metric("attentive_connector_dlq_write_errors_total") >= 1,
            timeout_s=90,
            interval_s=0.5,
            what="a failed dead-letter write",
        )
        set_topic_config(bootstrap, stack.dlq("orders"), "max.message.bytes", DLQ_DEFAULT_MAX_BYTES)
        fleet.note("orders DLQ writable again")
        reach(0.45)

        assert fleet.sigterm(joined[1].name) == 0  # scale 3 -> 2
        reach(0.55)
        fleet.sigkill(joined[0].name)
        replacement = fleet.start()  # still 2 replicas
        wait_until(
            lambda: replacement.metric("attentive_connector_rebalances_total", kind="assigned") >= 1,
            timeout_s=60,
            what="the replacement assigned partitions",
        )
        reach(0.70)

        chaos_broker.kill9()
        fleet.kill_event("broker SIGKILL", len(fleet.live))
        chaos_broker.restart()
        fleet.note("broker restarted on its data folder")

        topics = list(stack.topics.values())
        dlqs = [stack.dlq(k) for k in KINDS]
        bad: set[str] = set()
        for m in read_all(bootstrap, orders):
            if m.key is not None and m.key.startswith(BAD_KEY_PREFIX):
                bad.add(m.record_id)
        messages = [m for t in topics for m in read_all(bootstrap, t)]
        routes = {m.record_id: router.route(m.source_record()) for m in messages}

        def finished() -> bool:
            fleet.assert_alive()
            return not account(routes, JournalView.of(sandbox), dead_letter_ids(bootstrap, dlqs), bad).lost

        wait_until(finished, timeout_s=size.timeout_s, interval_s=2.0, what="every record finished")
        elapsed = time.monotonic() - started
        # While the replicas run, their periodic commits must bring the group to the end of every partition —
        # also after the broker restart, when a commit deferred by librdkafka can be written after a newer one
        # (the engine then commits the newer one again: PartitionOffsets.confirm).
        try:
            wait_until(
                lambda: not uncommitted(bootstrap, stack.group, topics),
                timeout_s=30,
                interval_s=1.0,
                what="the running replicas' commits at the end of every partition",
            )
            behind_while_running: dict[str, int] = {}
        except AssertionError:
            behind_while_running = uncommitted(bootstrap, stack.group, topics)
            fleet.note(f"commits behind while running: {sum(behind_while_running.values())} records")
        for name in list(fleet.live):
            assert fleet.sigterm(name) == 0

        view = JournalView.of(sandbox)
        dead = dead_letter_ids(bootstrap, dlqs)
        result = account(routes, view, dead, bad)
        entries = sandbox.journal()
        requests = len(entries)
        too_many = sum(1 for e in entries if int(e["status"]) == 429)
        share_429 = too_many / requests
        deliveries = sum(1 for e in entries if 200 <= int(e["status"]) < 300)
        duplicates = view.duplicates()
        by_cause = duplicates_by_cause(view.entries, fleet.kills)
        bounds = {
            what: duplicate_bound(
                hit,
                max_in_flight=MAX_IN_FLIGHT,
                deliveries_per_s=deliveries / elapsed,
                commit_interval_s=COMMIT_INTERVAL_S,
            )
            for _when, what, hit in fleet.kills
        }
        bound = sum(bounds.values())
        (tmp_path / "chaos.json").write_text(
            json.dumps(
                {"events": fleet.events, "by_cause": by_cause, "bounds": bounds, "entries": view.entries}
            )
        )
        for key, value in (
            ("records", len(messages)),
            ("requests", requests),
            ("duplicates", duplicates),
            ("duplicate_bound", bound),
            ("429s", too_many),
            ("seconds", round(elapsed, 1)),
        ):
            record_property(key, value)
        print("\n" + "\n".join(fleet.events))
        for what, n in by_cause.items():
            print(f"duplicates after {what}: {n}" + (f" (bound {bounds[what]})" if what in bounds else ""))

        summary = (
            f"chaos: {len(messages)} records, {len(result.delivered)} delivered, "
            f"{len(result.dead_lettered)} dead-lettered, {len(result.skipped)} skipped, lost={len(result.lost)}, "
            f"duplicates={duplicates} (bound {bound} for {len(bounds)} kills), "
            f"429s={too_many}/{requests} ({share_429:.2%}), {elapsed:.0f}s, {size.name} size"
        )
        print(summary)
        assert len(messages) == size.records
        assert result.total == len(messages)
        assert result.lost == []
        assert result.dead_letter_problems == []
        assert result.skipped_but_sent == []
        assert bad <= result.dead_lettered  # the undecodable records, once the DLQ took writes again
        for rid in result.dead_lettered - bad:  # nothing else but a record that kept failing
            assert dead[rid].headers["dlq.error.class"] in (b"ApiTransientError", b"NetworkError"), rid
        assert uncommitted(bootstrap, stack.group, topics) == {}
        assert chaos_broker.restarts == 1
        over = {w: n for w, n in by_cause.items() if w in bounds and n > bounds[w]}
        assert not over, f"{summary}; over the bound after: {over}"
        assert duplicates <= bound, summary
        assert share_429 <= 0.005, summary
        assert not behind_while_running, (
            f"{summary}; the running replicas never committed past {behind_while_running}"
        )
    finally:
        if fleet is not None:
            fleet.stop_all()
        proxy.stop()
