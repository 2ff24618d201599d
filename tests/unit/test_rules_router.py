"""Routing records: calls and record ids, fan-out, unmatched, stale, all-or-nothing errors, ordering keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.attentive.endpoints import Endpoint
from connector.attentive.models import external_event_id
from connector.avro.encoder import Encoder
from connector.config import Encoding, load_config
from connector.errors import (
    ConfigError,
    DecodeError,
    InvalidPhoneError,
    RegistryUnavailableError,
    RoutingError,
    UnroutableError,
)
from connector.rules.router import Router
from connector.types import RouteResult, SourceRecord
from tests.unit.avro_rules_support import (
    NOW,
    SHIPPED_RULES,
    decoded,
    loyalty,
    order,
    router_for,
    schema,
    signup,
    write_config,
)


def _value(topic: str, record: dict[str, Any]) -> bytes:
    return Encoder(schema(topic), Encoding.RAW).encode(decoded(topic, record))


def _route(
    router: Router,
    topic: str,
    record: dict[str, Any],
    *,
    offset: int = 10,
    key: bytes | None = b"k",
    timestamp_ms: int | None = None,
) -> RouteResult:
    return router.route(SourceRecord(topic, 2, offset, key, _value(topic, record), timestamp_ms=timestamp_ms))


@pytest.fixture
def shipped(tmp_path: Path) -> Router:
    return router_for(
        tmp_path,
        SHIPPED_RULES,
        clock=lambda: NOW.timestamp(),
        topics={"orders": {"key_field": "customer.id"}, "loyalty": {}, "signups": {}, "privacy": {}},
    )


def test_one_call_uses_the_plain_record_id(shipped: Router) -> None:
    result = _route(shipped, "orders", order())
    assert result.error is None and result.skipped is None
    assert result.rule == "order-placed"
    (call,) = result.calls
    assert (
        call.endpoint is Endpoint.PURCHASE and call.record_id == "orders/2/10" and call.rule == "order-placed"
    )
    assert call.body["user"] == {
        "phone": "+12015550123",
        "email": "ava@example.com",
        "externalIdentifiers": {"clientUserId": "cust-1"},
    }
    assert call.body["orderId"] == "ORD-1001" and call.body["salesChannel"] == {"channelType": "WEB"}
    assert call.body["occurredAt"] == "2025-03-14T14:30:00.000Z"
    assert call.body["items"] == [
        {
            "productId": "TEE-001",
            "productVariantId": "TEE-001-M",
            "name": "Organic Cotton Tee (M)",
            "price": [{"value": pytest.approx(24), "currency": "USD"}],
            "quantity": 2,
            "productImage": "https://cdn.example.com/tee.jpg",
        }
    ]
    assert str(call.body["items"][0]["price"][0]["value"]) == "24.00"  # exact Decimal, not a float


def test_fan_out_in_rule_order_with_numbered_record_ids(shipped: Router) -> None:
    result = _route(shipped, "loyalty", loyalty(kind="TIER_CHANGED", previous_tier="SILVER"), offset=77)
    assert [(c.rule, c.endpoint, c.record_id) for c in result.calls] == [
        ("loyalty-profile", Endpoint.CUSTOM_ATTRIBUTES, "loyalty/2/77/0"),
        ("loyalty-event", Endpoint.CUSTOM_EVENT, "loyalty/2/77/1"),
    ]
    assert result.rule == "loyalty-profile"
    assert result.calls[0].body["properties"] == {"Loyalty Tier": "GOLD", "Loyalty Points": 1520}
    event = result.calls[1].body
    assert event["type"] == "Loyalty Tier Changed"
    assert event["properties"] == {
        "pointsDelta": 120,
        "balance": 1520,
        "tier": "GOLD",
        "previousTier": "SILVER",
    }
    assert event["externalEventId"] == "5d0c1f0e-2d57-4a3b-8f1e-0e7a3c2b9d44"


def test_custom_event_without_mapped_id_gets_a_deterministic_one(tmp_path: Path) -> None:
    rules = """rules:
  - name: any-order
    topics: [orders]
    api: custom_event
    user: {email: customer.email}
    fields: {type: {template: "Order {{ title(kind) }}"}}
"""
    router = router_for(tmp_path, rules)
    first = _route(router, "orders", order(), offset=5).calls[0].body
    again = _route(router, "orders", order(), offset=5).calls[0].body
    other = _route(router, "orders", order(), offset=6).calls[0].body
    assert first["type"] == "Order Order Placed"
    assert (
        first["externalEventId"] == again["externalEventId"] == external_event_id("orders", 2, 5, "any-order")
    )
    assert other["externalEventId"] != first["externalEventId"]


def test_signup_links_then_subscribes_then_profile_then_unsubscribe(shipped: Router) -> None:
    result = _route(shipped, "signups", signup(birthday="1990-02-03", interests=["yoga", "travel"]))
    link, sub, profile = result.calls  # rule order: the identity link goes first
    assert link.endpoint is Endpoint.IDENTITY and link.rule == "link-customer-id"
    assert link.body == {"phone": "+12125550199", "email": "maya@example.com", "clientUserId": "cust-3"}
    assert [c.record_id for c in result.calls] == ["signups/2/10/0", "signups/2/10/1", "signups/2/10/2"]
    assert sub.endpoint is Endpoint.SUBSCRIBE and sub.rule == "sms-opt-in"
    assert sub.body == {
        "user": {"phone": "+12125550199"},
        "signUpSourceId": "402117",
        "externalIdentifiers": {"clientUserId": "cust-3"},
        "singleOptIn": False,
    }
    assert profile.body["properties"] == {
        "First Name": "Maya",
        "Birthday": "1990-02-03",
        "Interests": "yoga, travel",
    }
    by_locale = _route(shipped, "signups", signup(sign_up_source_id=None, locale="fr-CA", first_name=None))
    assert [c.rule for c in by_locale.calls] == ["link-customer-id", "sms-opt-in-by-locale"]
    assert by_locale.calls[1].body["locale"] == {"language": "fr", "country": "CA"}
    assert by_locale.calls[1].body["subscriptionType"] == "MARKETING"
    out = _route(
        shipped, "signups", signup(channel="EMAIL", consent={"type": "MARKETING", "status": "OPT_OUT"})
    )
    # An opt-out is not linked again (its opt-in was): identity's 10/s stays for the opt-ins.
    assert [(c.rule, c.body) for c in out.calls] == [
        (
            "email-opt-out",
            {
                "user": {"email": "maya@example.com"},
                "subscriptions": [{"type": "MARKETING", "channel": "EMAIL"}],
            },
        ),
    ]


def test_unmatched_is_skipped_or_dead_lettered(tmp_path: Path) -> None:
    rules = """rules:
  - name: placed
    topics: [orders]
    when: "kind == 'ORDER_PLACED'"
    api: custom_event
    user: {email: customer.email}
    fields: {type: {literal: Placed}}
"""
    skip = router_for(tmp_path, rules)
    result = _route(skip, "orders", order(kind="PRODUCT_VIEWED", order_id=None), key=b"cust-1")
    assert result == RouteResult(skipped="no_rule", ordering_key="cust-1")
    dead = router_for(tmp_path, rules, unmatched="dead_letter")
    result = _route(dead, "orders", order(kind="PRODUCT_VIEWED"))
    assert isinstance(result.error, UnroutableError) and result.error.permanent and not result.calls
    assert result.error.reason == "no_rule"
    assert _route(dead, "loyalty", loyalty()).error is not None  # a topic with no rules at all


def test_stale_records_are_skipped_by_max_age(tmp_path: Path) -> None:
    now = [NOW.timestamp()]
    router = router_for(tmp_path, SHIPPED_RULES, clock=lambda: now[0])
    view = order(kind="PRODUCT_VIEWED", order_id=None, occurred_at="2025-03-14T02:00:00Z")  # 13h before NOW
    result = _route(router, "orders", view)
    assert result.skipped == "stale" and result.rule == "product-viewed" and not result.calls
    fresh = order(kind="PRODUCT_VIEWED", order_id=None, occurred_at="2025-03-14T04:00:00Z")  # 11h
    assert [c.rule for c in _route(router, "orders", fresh).calls] == ["product-viewed"]
    # purchases have no max_age: still sent days later
    old_purchase = order(occurred_at="2025-03-10T00:00:00Z")
    assert [c.rule for c in _route(router, "orders", old_purchase).calls] == ["order-placed"]


def test_max_age_falls_back_to_the_kafka_timestamp(tmp_path: Path) -> None:
    rules = """rules:
  - name: points
    topics: [loyalty]
    api: custom_attributes
    max_age: 1h
    user: {email: customer.email}
    fields: {properties: {Points: balance}}
  - name: fresh-only-event
    topics: [loyalty]
    api: custom_event
    max_age: 1h
    user: {email: customer.email}
    fields: {type: {literal: Points}, occurredAt: occurred_at}
"""
    router = router_for(tmp_path, rules, clock=lambda: NOW.timestamp())
    kafka_ts = int(NOW.timestamp() * 1000) - 2 * 3600 * 1000
    record = loyalty(occurred_at="2025-03-14T14:30:00Z")  # 30 min old by occurred_at
    result = _route(router, "loyalty", record, timestamp_ms=kafka_ts)
    # the attributes rule maps no occurredAt: judged by the (2h old) Kafka timestamp; the event by occurredAt
    assert [c.rule for c in result.calls] == ["fresh-only-event"] and result.calls[
        0
    ].record_id == "loyalty/2/10"
    both_stale = _route(router, "loyalty", loyalty(occurred_at="2025-03-14T10:00:00Z"), timestamp_ms=kafka_ts)
    assert both_stale.skipped == "stale" and both_stale.rule == "points"
    no_time = _route(router, "loyalty", record, timestamp_ms=None)
    assert len(no_time.calls) == 2  # no Kafka timestamp: cannot be judged stale
    # A router that never applies max_age (the dry-run tool without --now) routes even very old records.
    ageless = Router.from_config(load_config(tmp_path / "connector.yaml", env={}), apply_max_age=False)
    ancient = ageless.route_decoded(
        "loyalty",
        decoded("loyalty", loyalty(occurred_at="2020-01-01T00:00:00Z")),
        partition=0,
        offset=0,
        timestamp_ms=kafka_ts,
    )
    assert len(ancient.calls) == 2


def test_invalid_phone_dead_letters_the_whole_record(shipped: Router) -> None:
    result = _route(
        shipped, "loyalty", loyalty(customer={"id": "c", "phone": "555-0100", "email": "a@example.com"})
    )
    assert not result.calls
    assert isinstance(result.error, InvalidPhoneError) and result.error.rule == "loyalty-profile"
    assert result.rule == "loyalty-profile" and result.error.reason == "invalid_phone"
    assert "555" not in str(result.error)  # the number is not echoed


def test_routing_is_all_or_nothing(tmp_path: Path) -> None:
    rules = """rules:
  - name: first-ok
    topics: [signups]
    api: custom_attributes
    user: {email: customer.email}
    fields: {properties: {Name: first_name}}
  - name: second-breaks
    topics: [signups]
    api: subscribe
    user: {phone: customer.phone}
    fields: {signUpSourceId: sign_up_source_id}
"""
    router = router_for(tmp_path, rules)
    result = _route(router, "signups", signup(sign_up_source_id=None))
    assert not result.calls
    assert isinstance(result.error, RoutingError) and result.error.rule == "second-breaks"
    assert "signUpSourceId" in str(result.error)
    assert result.rule == "second-breaks"


def test_missing_identifiers_are_routing_errors(tmp_path: Path) -> None:
    rules = """rules:
  - name: sms
    topics: [signups]
    api: subscribe
    user: {phone: customer.phone}
    fields: {signUpSourceId: sign_up_source_id}
  - name: attrs
    topics: [loyalty]
    api: custom_attributes
    user: {phone: customer.phone, email: customer.email, custom_identifiers: {loyalty: customer.id}}
    fields: {properties: {Tier: tier}}
"""
    router = router_for(tmp_path, rules)
    result = _route(router, "signups", signup(customer={"id": "c", "email": "m@example.com"}))
    assert isinstance(result.error, RoutingError) and result.error.reason == "no_identifier"
    assert str(result.error) == "no phone or email for subscribe: the mapped phone are empty in this record"
    ok = _route(router, "loyalty", loyalty(customer={"id": "L-9"}))
    assert ok.calls[0].body["user"] == {
        "externalIdentifiers": {"customIdentifiers": [{"name": "loyalty", "value": "L-9"}]}
    }


def test_expression_failures_on_odd_data_become_routing_errors(tmp_path: Path) -> None:
    rules = """rules:
  - name: r
    topics: [orders]
    api: custom_event
    user: {email: customer.email}
    fields:
      type: {literal: X}
      properties: {total: "sum(items[].name)"}
"""
    result = _route(router_for(tmp_path, rules), "orders", order())
    assert isinstance(result.error, RoutingError) and result.error.reason == "expression"
    assert str(result.error) == (
        "rule 'r' failed on this record: JMESPathTypeError: sum() got a str value, expected array-number"
    )
    assert "Organic" not in str(result.error)  # record values are never quoted (they may be phones/emails)


def test_template_with_a_missing_value_leaves_the_field_missing(tmp_path: Path) -> None:
    rules = """rules:
  - name: r
    topics: [orders]
    api: custom_event
    user: {email: customer.email}
    fields:
      type: {template: "Order {{ cancel_reason }}"}
"""
    result = _route(router_for(tmp_path, rules), "orders", order())
    assert isinstance(result.error, RoutingError) and "$.type" in str(result.error)


def test_items_from_must_be_a_list_at_runtime(tmp_path: Path) -> None:
    rules = """rules:
  - name: r
    topics: [orders]
    api: ecommerce.product_view
    user: {email: customer.email}
    items: {from: "values(@)[0]", product_id: product_id, variant_id: variant_id, price: unit_price.amount}
"""
    # (the static check cannot know what values(@)[0] is; at run time it is the event_id text)
    result = _route(router_for(tmp_path, rules), "orders", order())
    assert isinstance(result.error, RoutingError) and result.error.reason == "items"
    assert "items.from 'values(@)[0]' is not a list" in str(result.error)


def test_decode_errors_are_returned_registry_outages_raised(tmp_path: Path) -> None:
    router = router_for(tmp_path, SHIPPED_RULES)
    result = router.route(SourceRecord("orders", 0, 1, b"\xff\xfe", b"not avro at all"))
    assert isinstance(result.error, DecodeError) and result.ordering_key == "fffe"

    class Down:
        def get_schema(self, schema_id: int) -> Any:
            raise ConnectionRefusedError(111, "refused")

        def register_schema(self, subject: str, schema: Any) -> int:
            raise AssertionError

    confluent = router_for(
        tmp_path,
        SHIPPED_RULES,
        registry_client=Down(),
        topics={"orders": {"encoding": "confluent"}, "loyalty": {}, "signups": {}, "privacy": {}},
    )
    record = SourceRecord("orders", 0, 1, None, b"\x00\x00\x00\x00\x01\x02")
    assert confluent.needs_registry(record)
    with pytest.raises(RegistryUnavailableError):
        confluent.route(record)
    unknown = confluent.route(SourceRecord("elsewhere", 0, 1, b"k", b"x"))
    assert isinstance(unknown.error, UnroutableError) and "not configured" in str(unknown.error)


def test_ordering_key(tmp_path: Path) -> None:
    router = router_for(
        tmp_path,
        SHIPPED_RULES,
        topics={
            "orders": {"key_field": "customer.id"},
            "loyalty": {"key_field": "points_delta"},
            "signups": {},
            "privacy": {},
        },
    )
    assert _route(router, "orders", order(), key=b"ignored").ordering_key == "cust-1"
    assert _route(router, "loyalty", loyalty(), key=None).ordering_key == "120"  # non-text keys as text
    assert _route(router, "signups", signup(), key="clé".encode()).ordering_key == "clé"
    assert _route(router, "signups", signup(), key=b"\xff\x00").ordering_key == "ff00"
    assert _route(router, "signups", signup(), key=None).ordering_key is None
    empty_key_field = router.route_decoded(
        "orders",
        {**decoded("orders", order()), "customer": {"id": ""}},
        partition=0,
        offset=0,
        timestamp_ms=None,
        key=b"kafka-key",
    )
    assert empty_key_field.ordering_key == "kafka-key"


def test_route_decoded_matches_route(shipped: Router) -> None:
    record = order(
        kind="ORDER_SHIPPED",
        shipment={"carrier": "UPS", "tracking_number": "1Z9", "estimated_delivery": "2025-03-16"},
    )
    via_bytes = _route(shipped, "orders", record, offset=3)
    via_dict = shipped.route_decoded(
        "orders", decoded("orders", record), partition=2, offset=3, timestamp_ms=None, key=b"k"
    )
    assert via_bytes == via_dict
    props = via_bytes.calls[0].body["properties"]
    assert (
        props["estimatedDelivery"] == "2025-03-16" and props["carrier"] == "UPS" and props["itemCount"] == 1
    )
    assert shipped.topics == ["orders", "loyalty", "signups", "privacy"]


def test_offline_router_has_no_decoders(tmp_path: Path) -> None:
    topics = {"orders": {"encoding": "confluent"}, "loyalty": {}, "signups": {}, "privacy": {}}
    config = load_config(write_config(tmp_path, SHIPPED_RULES, topics=topics), env={})
    router = Router.from_config(config, offline=True)  # no registry configured: fine offline
    result = router.route(SourceRecord("orders", 0, 0, None, b"\x00"))
    assert isinstance(result.error, UnroutableError) and "offline" in str(result.error)
    with pytest.raises(ConfigError, match="kafka.schema_registry.url is not set"):
        Router.from_config(config)
