"""``dlq replay``: after a rule fix the dead letters are re-delivered, and a second run replays nothing.

A broken ``loyalty-event`` rule (a forbidden character in the event type) dead-letters every loyalty record.
After the rule is fixed, ``attentive-connector dlq replay --topic <t>.dlq --rule loyalty-event`` re-routes the
original records — with their original coordinates, so record ids and ``externalEventId`` s are unchanged —
and delivers them. Records that still fail are dead-lettered again (not lost); a second run replays nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector import samples
from connector.pipeline.connector import Connector
from connector.pipeline.replay import parse_since
from tests.integration.engine_support import (
    JournalView,
    committed,
    make_stack,
    read_all,
)
from tests.support import REPO, SandboxProcess, run_cli

pytestmark = pytest.mark.integration


def loyalty_rules(event_type_template: str) -> list[dict[str, Any]]:
    rules = yaml.safe_load((REPO / "config" / "rules.yaml").read_text())["rules"]
    out = []
    for r in rules:
        if "loyalty" not in r.get("topics", []):
            continue
        if r["name"] == "loyalty-event":
            r["fields"]["type"] = {"template": event_type_template}
        out.append(r)
    return out


async def run_until_idle(connector: Connector, expected: int, timeout_s: float = 60) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not task.done():
            s = connector.stats()
            if s["consumed"] >= expected and s["pending"] == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_replay_after_a_rule_fix_redelivers_and_a_second_run_replays_nothing(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["loyalty"],
        rules=loyalty_rules("Loyalty ({{ title(kind) }})"),  # ( ) are forbidden in event types
    )
    topic, dlq = stack.topics["loyalty"], stack.dlq("loyalty")
    records = list(samples.generate("loyalty", 30, seed=77, invalid_ratio=0.0))
    # One record whose phone can never be normalised: it must fail again on replay, and stay findable.
    records[5]["customer"] = {**records[5]["customer"], "phone": "12345"}
    samples.produce(stack.config, topic, records, bootstrap=kafka_bootstrap)
    originals = {m.record_id: m for m in read_all(kafka_bootstrap, topic)}

    connector = Connector(stack.config)
    await run_until_idle(connector, expected=30)
    assert connector.stats()["dead_lettered"] == 30
    dead = read_all(kafka_bootstrap, dlq)
    assert len(dead) == 30
    assert JournalView.of(sandbox).ok_by_call == {}
    by_rule: dict[bytes, list[Any]] = {}
    for m in dead:
        by_rule.setdefault(m.headers["dlq.rule"], []).append(m)
    # The bad phone fails in the first matching rule (the profile); the rest fail in the broken event rule.
    assert len(by_rule[b"loyalty-event"]) == 29
    [bad_phone] = by_rule[b"loyalty-profile"]
    assert bad_phone.headers["dlq.error.class"] == b"InvalidPhoneError"

    # Fix the rule, then replay only the records that rule dead-lettered.
    Path(stack.config.resolve(stack.config.rules_file)).write_text(  # noqa: ASYNC240 - a small local file
        yaml.safe_dump(
            {"rules": _renamed(loyalty_rules("Loyalty {{ title(kind) }}"), topic)}, sort_keys=False
        )
    )
    sandbox.clear()
    env = stack.env()
    replay = ["dlq", "replay", "--config", str(stack.config_path), "--topic", dlq]
    first = run_cli([*replay, "--rule", "loyalty-event", "--since", "1h"], env=env, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = first.stdout.strip().splitlines()[-1]
    assert "read=30 delivered=29 dead_lettered=0 skipped=0 filtered=1 pending=0" in summary, summary
    # Progress goes to a terminal only: with stderr a pipe there is none (and never a \r to garble logs).
    assert f"replay {dlq}:" not in first.stderr and "\r" not in first.stderr

    # Every replayed record was delivered under its ORIGINAL record id (so the same externalEventId).
    view = JournalView.of(sandbox)
    for m in by_rule[b"loyalty-event"]:
        rid = f"{topic}/{m.headers['dlq.original.partition'].decode()}/{m.headers['dlq.original.offset'].decode()}"
        assert rid in originals
        assert view.ok_by_call.get(f"{rid}/0") == 1 and view.ok_by_call.get(f"{rid}/1") == 1, rid
    assert committed(kafka_bootstrap, f"{stack.group}.replay.{dlq}", dlq, 1)[0] == 30

    # Running the same replay again replays nothing.
    sandbox.clear()
    second = run_cli([*replay, "--rule", "loyalty-event"], env=env, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "read=0 delivered=0" in second.stdout, second.stdout
    assert JournalView.of(sandbox).entries == []

    # A record that still cannot be delivered is dead-lettered again, with its original coordinates.
    third = run_cli([*replay, "--rule", "loyalty-profile", "--group", "replay-profile"], env=env, timeout=120)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "dead_lettered=1" in third.stdout and "filtered=29" in third.stdout, third.stdout
    again = read_all(kafka_bootstrap, dlq)[30:]
    assert len(again) == 1
    h = again[0].headers
    assert h["dlq.error.class"] == b"InvalidPhoneError"
    for name in (
        "dlq.original.topic",
        "dlq.original.partition",
        "dlq.original.offset",
        "dlq.original.timestamp",
    ):
        assert h[name] == bad_phone.headers[name]
    assert (again[0].key, again[0].value) == (bad_phone.key, bad_phone.value)


def _renamed(rules: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    for r in rules:
        r["topics"] = [topic]
    return rules


def test_since_accepts_rfc3339_and_relative_ages() -> None:
    assert parse_since("2025-01-31T12:00:00Z") == 1738324800.0
    assert parse_since("2025-01-31T12:00:00") == 1738324800.0
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("30m", now=10_000.0) == 10_000.0 - 1800
    with pytest.raises(Exception, match="not a time"):
        parse_since("yesterday-ish")
