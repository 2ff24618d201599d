"""Bad input goes to the dead-letter topic with the right headers; the records behind it are delivered.

Also: a Schema Registry outage is not bad input — records are held (not dead-lettered) and delivered
when it comes back. The registry is the session's real one (Apicurio, Confluent-compatible API); the outage
test reaches it through :class:`tests.integration.registry_proxy.RegistryProxy`, a forwarding proxy that
answers 503 while "sick" — fault injection a real registry cannot do by itself.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector import samples
from connector.pipeline.connector import Connector
from tests.integration.engine_support import (
    JournalView,
    committed,
    dead_letter_ids,
    make_stack,
    produce_raw,
    read_all,
)
from tests.integration.registry_proxy import RegistryProxy
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_proxy(schema_registry_url: str) -> Iterator[RegistryProxy]:
    with RegistryProxy(schema_registry_url) as proxy:
        yield proxy


async def run_until(connector: Connector, predicate: Callable[[], bool], timeout_s: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not task.done() and not predicate():  # noqa: ASYNC110 - polls the broker-backed predicate; no event to wait on
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_bad_records_are_dead_lettered_with_headers_and_later_records_flow(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    sandbox: SandboxProcess,
    schema_registry_url: str,
) -> None:
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["orders", "signups"],
        partitions=1,
        topic_overrides={"orders": {"encoding": "confluent"}},
        registry_url=schema_registry_url,
    )
    config = stack.config
    orders, signups = stack.topics["orders"], stack.topics["signups"]
    good_orders = [r for r in samples.generate("orders", 200, seed=5) if r["kind"] == "ORDER_SHIPPED"][:3]
    assert len(good_orders) == 3

    # orders (Confluent wire format): good, not Avro (a registered schema id, then bytes that are no record of
    # it), good, wrong magic byte, unknown schema id, good.
    samples.produce(config, orders, good_orders[:1], bootstrap=kafka_bootstrap)
    schema_id = read_all(kafka_bootstrap, orders)[0].value[1:5]  # type: ignore[index]
    produce_raw(kafka_bootstrap, orders, [(b"bad-1", b"\x00" + schema_id + b"\x01\x01\x01\x01")])
    samples.produce(config, orders, good_orders[1:2], bootstrap=kafka_bootstrap)
    produce_raw(kafka_bootstrap, orders, [(b"bad-2", b"{json?}")])
    produce_raw(kafka_bootstrap, orders, [(b"bad-3", b"\x00" + struct.pack(">I", 987654) + b"\x02\x04")])
    samples.produce(config, orders, good_orders[2:], bootstrap=kafka_bootstrap)

    # signups (raw Avro): good, a phone that cannot be normalised, a record no rule can build, good.
    base = [
        r
        for r in samples.generate("signups", 60, seed=9)
        if r["consent"]["status"] == "OPT_IN" and r["channel"] == "SMS" and r["customer"]["phone"]
    ]
    assert len(base) >= 4
    bad_phone = dict(base[1], customer={**base[1]["customer"], "phone": "call me"})
    nobody = dict(base[2], customer={**base[2]["customer"], "phone": None, "email": None})
    samples.produce(config, signups, [base[0], bad_phone, nobody, base[3]], bootstrap=kafka_bootstrap)

    order_msgs = read_all(kafka_bootstrap, orders)
    signup_msgs = read_all(kafka_bootstrap, signups)
    assert len(order_msgs) == 6 and len(signup_msgs) == 4
    dlqs = [stack.dlq("orders"), stack.dlq("signups")]

    connector = Connector(config)
    await run_until(
        connector,
        lambda: connector.stats()["consumed"] == 10 and connector.stats()["pending"] == 0,
        timeout_s=60,
    )
    stats = connector.stats()
    assert stats["dead_lettered"] == 5, stats
    dead = dead_letter_ids(kafka_bootstrap, dlqs)
    expect = {
        order_msgs[1].record_id: (b"DecodeError", b"not_avro"),
        order_msgs[3].record_id: (b"DecodeError", b"bad_magic"),
        order_msgs[4].record_id: (b"DecodeError", b"unknown_schema"),
        signup_msgs[1].record_id: (b"InvalidPhoneError", b"invalid_phone"),
    }
    for rid, (cls, reason) in expect.items():
        h = dead[rid].headers
        assert (h["dlq.error.class"], h["dlq.error.reason"]) == (cls, reason), (rid, h)
    unbuildable = dead[signup_msgs[2].record_id].headers
    assert unbuildable["dlq.error.class"] in (b"RoutingError", b"InvalidPhoneError"), unbuildable
    assert unbuildable["dlq.rule"].startswith(b"sms-opt-in")
    # The phone fails first in the first signups rule, the identity link (rule order).
    assert dead[signup_msgs[1].record_id].headers["dlq.rule"] == b"link-customer-id"

    # Original key, value and timestamp kept; the coordinates are in the headers.
    for m in (order_msgs[1], order_msgs[3], order_msgs[4], signup_msgs[1], signup_msgs[2]):
        d = dead[m.record_id]
        assert (d.key, d.value) == (m.key, m.value)
        assert d.headers["dlq.original.timestamp"] == str(m.timestamp_ms).encode()
        assert d.headers["dlq.attempts"] == b"0"
        assert d.headers["dlq.connector.version"]
        for name in ("dlq.first.failure", "dlq.last.failure"):
            assert d.headers[name].endswith(b"Z")

    # The good records behind the bad ones on the same partition were delivered.
    view = JournalView.of(sandbox)
    for m in (order_msgs[0], order_msgs[2], order_msgs[5], signup_msgs[0], signup_msgs[3]):
        assert any(c.startswith(m.record_id) for c in view.ok_by_call), m.record_id
    assert committed(kafka_bootstrap, stack.group, orders, 1)[0] == 6
    assert committed(kafka_bootstrap, stack.group, signups, 1)[0] == 4


async def test_a_schema_registry_outage_holds_records_and_dead_letters_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    sandbox: SandboxProcess,
    registry_proxy: RegistryProxy,
) -> None:
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=["loyalty"],
        partitions=1,
        topic_overrides={"loyalty": {"encoding": "confluent"}},
        registry_url=registry_proxy.url,
    )
    config = stack.config
    samples.produce(
        config,
        stack.topics["loyalty"],
        list(samples.generate("loyalty", 20, seed=1)),
        bootstrap=kafka_bootstrap,
    )
    registry_proxy.fail_with(503)
    refused_before = registry_proxy.request_count
    connector = Connector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    try:
        # Wait until everything is consumed and the connector has asked the sick registry more than once
        # (it retried instead of giving up), then check that nothing moved.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (  # noqa: ASYNC110 - polls the real broker
            connector.stats()["consumed"] == 20 and registry_proxy.request_count - refused_before >= 2
        ):
            await asyncio.sleep(0.1)
        assert connector.stats()["consumed"] == 20
        assert registry_proxy.request_count - refused_before >= 2, "the connector never retried the registry"
        assert connector.stats()["delivered"] == 0
        assert connector.stats()["dead_lettered"] == 0
        registry_proxy.fail_with(None)
        deadline = time.monotonic() + 30
        while connector.stats()["delivered"] < 20 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter the engine does not signal
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert connector.stats()["delivered"] == 20
    assert connector.stats()["dead_lettered"] == 0
    assert read_all(kafka_bootstrap, stack.dlq("loyalty")) == []
