"""Link on signup, then events by customer id — and deletion requests — through the real broker and sandbox.

``python -m connector run`` with the shipped rule table (plus, for the same-lane case, a link rule on the orders
topic) while the sandbox fails a fifth of the requests (500/503), so calls are retried:

1. signups fan out identity → subscribe → attributes: each call of a record starts only after the one before
   it was answered 2xx (rule order survives retries);
2. later orders that carry **only** the customer id reach the sandbox after the identity call that linked
   that id, and the sandbox counts them attributed (an order of a never-linked id is counted unattributed);
3. within one key's lane: an order with a phone links the id, the next order of that customer (same key, same
   partition, produced in the same batch) carrying only the id is sent after that identity call;
4. deletion requests: one is delivered as a spec-valid ``privacy.delete`` call, one naming nobody is in the
   privacy dead-letter topic with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector import samples
from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import default_validator
from tests.integration.engine_support import (
    REPO,
    ConnectorProcess,
    JournalView,
    all_accounted,
    dead_letter_ids,
    expected_calls,
    make_stack,
    read_all,
    wait_until,
)
from tests.support import SandboxProcess
from tests.unit.avro_rules_support import decoded, order

pytestmark = pytest.mark.integration

FAULTS = {"error_rates": {"500": 0.1, "503": 0.1}, "latency_ms": 5, "jitter_ms": 10}
ORDER_LINK = {
    "name": "order-link",
    "topics": ["orders"],
    "when": "customer.phone || customer.email",
    "api": "identity",
    "user": {"phone": "customer.phone", "email": "customer.email", "client_user_id": "customer.id"},
}


def _index(view: JournalView) -> tuple[dict[str, int], dict[str, int]]:
    """Call id -> position of its first request, and of its first 2xx, in the sandbox's arrival order."""
    first: dict[str, int] = {}
    for i, e in enumerate(view.entries):
        first.setdefault(e["record_id"], i)
    return first, view.first_ok_index


def _linking_calls(view: JournalView) -> dict[str, int]:
    """clientUserId -> position of the first 2xx identity call that linked it."""
    out: dict[str, int] = {}
    for i, e in enumerate(view.entries):
        if e["path"] == Endpoint.IDENTITY.path and 200 <= int(e["status"]) < 300:
            out.setdefault(str(e["body"]["clientUserId"]), i)
    return out


def test_link_on_signup_then_events_by_customer_id_and_deletions(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    sandbox: SandboxProcess,
) -> None:
    sandbox.http.post("/__sandbox/reset").raise_for_status()  # identity links and counts too
    shipped = yaml.safe_load((REPO / "config" / "rules.yaml").read_text())["rules"]
    at = next(i for i, r in enumerate(shipped) if r["topics"] == ["orders"])
    rules = [*shipped[:at], ORDER_LINK, *shipped[at:]]
    stack = make_stack(
        tmp_path,
        kafka_bootstrap,
        make_topic,
        sandbox,
        kinds=("orders", "signups", "privacy"),
        rules=rules,
        topic_overrides={"orders": {"key_field": "customer.id"}, "privacy": {"key_field": "customer.id"}},
    )
    config = stack.config
    sandbox.set_faults(FAULTS)
    validator = default_validator()
    proc = ConnectorProcess(stack)
    try:
        # --- 1. signups: identity first, then the rest of the fan-out, one after the other
        signups = list(samples.generate("signups", 80, seed=21))
        samples.produce(config, stack.topics["signups"], signups, bootstrap=stack.bootstrap)
        signup_msgs = read_all(kafka_bootstrap, stack.topics["signups"])
        calls = expected_calls(stack, signup_msgs)

        def signups_pending() -> list[str]:
            dead = dead_letter_ids(kafka_bootstrap, [stack.dlq("signups")])
            return all_accounted(JournalView.of(sandbox), calls, set(dead))

        wait_until(lambda: not signups_pending(), timeout_s=120, what="every signup delivered")
        view = JournalView.of(sandbox)
        first, first_ok = _index(view)
        dead_signups = dead_letter_ids(kafka_bootstrap, [stack.dlq("signups")])
        fanned = [cs for rid, cs in calls.items() if len(cs) > 1 and rid not in dead_signups]
        assert len(fanned) > 30
        linked_first = 0
        for cs in fanned:
            for before, after in zip(cs, cs[1:], strict=False):
                assert first_ok[before] < first[after], (before, after)
            linked_first += view.entries[first[cs[0]]]["path"] == Endpoint.IDENTITY.path
        assert linked_first > 30  # the link rule leads the fan-out
        retried = sum(1 for e in view.entries if int(e["status"]) >= 500)
        assert retried > 0  # the faults really made calls retry

        # --- 2. + 3. + 4. orders by customer id only, a same-lane pair, deletion requests
        links = _linking_calls(view)
        linked_ids = sorted(links)[:10]
        assert len(linked_ids) == 10
        by_id_only = [
            decoded("orders", order(order_id=f"ORD-{n}", customer={"id": cid}))
            for n, cid in enumerate([*linked_ids, "cust-never-linked"])
        ]
        pairs = []
        for n in range(5):
            cid = f"cust-lane-{n}"
            pairs.append(
                decoded("orders", order(order_id=f"ORD-P{n}", customer={"id": cid, "phone": "2125550199"}))
            )
            pairs.append(
                decoded(
                    "orders",
                    order(
                        kind="ORDER_SHIPPED",
                        order_id=f"ORD-P{n}",
                        customer={"id": cid},
                        shipment={"carrier": "UPS", "tracking_number": f"1Z{n}"},
                    ),
                )
            )
        samples.produce(config, stack.topics["orders"], [*by_id_only, *pairs], bootstrap=stack.bootstrap)
        deletions: list[dict[str, Any]] = [
            {
                "request_id": "DSR-1",
                "customer": {"id": linked_ids[0], "phone": None, "email": "someone@example.com"},
                "regulation": "CCPA",
                "source": "privacy-portal",
                "occurred_at": order()["occurred_at"],
            },
            {
                "request_id": "DSR-2",
                "customer": {"id": None, "phone": None, "email": None},
                "regulation": "GDPR",
                "source": None,
                "occurred_at": order()["occurred_at"],
            },
        ]
        samples.produce(
            config,
            stack.topics["privacy"],
            [decoded("privacy", d) for d in deletions],
            bootstrap=stack.bootstrap,
        )
        later = read_all(kafka_bootstrap, stack.topics["orders"]) + read_all(
            kafka_bootstrap, stack.topics["privacy"]
        )
        later_calls = expected_calls(stack, later)

        def later_pending() -> list[str]:
            dead = dead_letter_ids(kafka_bootstrap, [stack.dlq("orders"), stack.dlq("privacy")])
            return all_accounted(JournalView.of(sandbox), later_calls, set(dead))

        wait_until(lambda: not later_pending(), timeout_s=120, what="orders and deletions delivered")
        assert proc.terminate() == 0
    finally:
        proc.stop_quietly()

    view = JournalView.of(sandbox)
    first, first_ok = _index(view)
    links = _linking_calls(view)
    by_record = {m.record_id: m for m in later}
    purchases_by_id = 0
    for rid, cs in later_calls.items():
        m = by_record[rid]
        for call_id in cs:
            entry = view.entries[first_ok[call_id]]
            assert validator.validate(Endpoint(_endpoint(entry["path"])), entry["body"]) == [], entry
            user = entry["body"].get("user")
            if user is None or set(user) != {"externalIdentifiers"}:
                continue
            # 2./3.: an event naming its person by customer id only arrives after the call that linked it
            cid = user["externalIdentifiers"]["clientUserId"]
            if cid == "cust-never-linked":
                continue
            assert cid in links and links[cid] < first[call_id], (cid, m.record_id)
            purchases_by_id += 1
    assert purchases_by_id == 10 + 5
    stats = sandbox.stats()["identity"]["events_by_external_id"]
    assert stats == {"attributed": 15, "unattributed": 1}
    # 3. the same-lane pairs really shared a partition (same key), so it is the lane that ordered them
    lane = [
        m for m in later if m.topic == stack.topics["orders"] and (m.key or b"").startswith(b"cust-lane-")
    ]
    assert len(lane) == 10
    for n in range(5):
        parts = {m.partition for m in lane if m.key == f"cust-lane-{n}".encode()}
        assert len(parts) == 1

    # 4. deletions: one sent, one dead-lettered with the reason
    sent = [e for e in view.entries if e["path"] == Endpoint.PRIVACY_DELETE.path and e["status"] == 200]
    assert [e["body"] for e in sent] == [
        {
            "subjectEmail": "someone@example.com",
            "clientUserId": linked_ids[0],
            "requestMsg": "CCPA deletion request DSR-1 via privacy-portal",
        }
    ]
    dead = dead_letter_ids(kafka_bootstrap, [stack.dlq("privacy")])
    assert len(dead) == 1
    [m] = dead.values()
    assert m.headers["dlq.error.reason"] == b"no_identifier"
    assert m.headers["dlq.rule"] == b"privacy-delete"
    assert b"no user identifier" in m.headers["dlq.error.message"]


def _endpoint(path: str) -> str:
    from connector.attentive.endpoints import BY_PATH

    return str(BY_PATH[path])
