"""Request models / build_body: every body they produce is valid per the spec validator; bad data raises a
permanent RoutingError naming the field, never the value; prices stay exact; phones become E.164."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.attentive.bodies import BUILDERS, Bail
from connector.attentive.endpoints import Endpoint
from connector.attentive.jsonio import dumps, loads
from connector.attentive.models import (
    MeInfo,
    build_body,
    external_event_id,
    format_timestamp,
    validate_body,
)
from connector.attentive.spec import default_validator
from connector.errors import InvalidPhoneError, RoutingError
from tests.unit.attentive_examples import DOC_SAMPLES

V = default_validator()
PHONE = "+14155550123"  # a valid US number (phonenumbers rejects the 311 numbers in Attentive's examples)
USER = {"phone": PHONE}
ITEM = {"productId": "p1", "productVariantId": "v1", "price": [{"value": "19.99", "currency": "USD"}]}


def build(endpoint: Endpoint, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    body = build_body(endpoint, data, **kw)
    assert V.validate(endpoint, body) == [], body
    return body


def fails(endpoint: Endpoint, data: Any, fragment: str, exc: type[Exception] = RoutingError) -> str:
    with pytest.raises(exc) as info:
        build_body(endpoint, data, rule="r1")
    assert fragment in str(info.value), str(info.value)
    assert info.value.permanent and info.value.rule == "r1"  # type: ignore[attr-defined]
    return str(info.value)


@pytest.mark.parametrize(("name", "endpoint", "body"), DOC_SAMPLES, ids=[s[0] for s in DOC_SAMPLES])
def test_documented_samples_round_trip(name: str, endpoint: Endpoint, body: dict[str, Any]) -> None:
    data = json.loads(json.dumps(body).replace("+13115552368", PHONE))
    out = build(endpoint, data)
    person = out.get("user", out)  # identity and privacy.delete name the person at the top level
    phone = person.get("phone", person.get("subjectPhone"))
    if "+13115552368" in json.dumps(body):
        assert phone == PHONE
    else:
        assert json.loads(dumps(out)) == body


def test_purchase_normalises_and_keeps_prices_exact() -> None:
    data = {
        "items": [
            {**ITEM, "price": [{"value": Decimal("19.990"), "currency": "usd"}], "quantity": 2, "name": ""},
            {"productId": 123, "productVariantId": 456, "price": [{"value": 0.1}]},
            {"productId": "p3", "productVariantId": "v3", "price": [{"value": 7}]},
        ],
        "user": {"phone": "(415) 555-0123", "email": None, "externalIdentifiers": {"clientUserId": "  "}},
        "occurredAt": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        "orderId": 987,
        "salesChannel": {"channelType": "web"},
    }
    body = build(Endpoint.PURCHASE, data)
    assert body == {
        "items": [
            {
                "productId": "p1",
                "productVariantId": "v1",
                "price": [{"value": Decimal("19.990"), "currency": "USD"}],
                "quantity": 2,
            },
            {
                "productId": "123",
                "productVariantId": "456",
                "price": [{"value": Decimal("0.1"), "currency": "USD"}],
            },
            {
                "productId": "p3",
                "productVariantId": "v3",
                "price": [{"value": Decimal(7), "currency": "USD"}],
            },
        ],
        "user": {"phone": PHONE},
        "occurredAt": "2024-05-01T10:00:00.123Z",
        "orderId": "987",
        "salesChannel": {"channelType": "WEB"},
    }
    raw = dumps(body)
    assert b'"value":19.990,' in raw and b'"value":0.1,' in raw and b'"value":7,' in raw
    assert loads(raw)["items"][0]["price"][0]["value"] == Decimal("19.990")


def test_string_prices_are_exact_and_nan_is_refused() -> None:
    body = build(
        Endpoint.ADD_TO_CART, {"items": [{**ITEM, "price": [{"value": "1234567.8901"}]}], "user": USER}
    )
    assert dumps(body).count(b"1234567.8901") == 1
    fails(
        Endpoint.ADD_TO_CART,
        {"items": [{**ITEM, "price": [{"value": "NaN"}]}], "user": USER},
        "$.items[0].price[0].value",
    )
    fails(
        Endpoint.ADD_TO_CART,
        {"items": [{**ITEM, "price": [{"value": "cheap"}]}], "user": USER},
        "$.items[0].price[0].value",
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"items": [{**ITEM, "price": {"value": 1}}], "user": USER}, "$.items[0].price: must be a list of"),
        ({"items": [{**ITEM, "price": []}], "user": USER}, "$.items[0].price: required field missing"),
        ({"items": [], "user": USER}, "$.items: required field missing"),
        ({"items": [ITEM], "user": {}}, "$.user: required field missing"),
        ({"items": [ITEM], "user": {"email": None, "phone": ""}}, "$.user: required field missing"),
        (
            {"items": [ITEM], "user": {"externalIdentifiers": {"customIdentifiers": []}}},
            "$.user: required field",
        ),
        ({"items": [ITEM], "user": {"email": "a@b.co", "zip": "1"}}, "$.user.zip: unexpected key"),
        ({"items": [ITEM], "user": {"email": "not-an-email"}}, "$.user.email: not a valid email address"),
        (
            {"items": [{**ITEM, "productId": None}], "user": USER},
            "$.items[0].productId: required field missing",
        ),
        ({"items": [{**ITEM, "price": [{"value": 1, "currency": "dollars"}]}], "user": USER}, "currency"),
        (
            {"items": [ITEM], "user": USER, "occurredAt": "2024-05-01T10:00:00"},
            "$.occurredAt: timestamp has no UTC",
        ),
        (
            {"items": [ITEM], "user": USER, "occurredAt": datetime(2024, 5, 1)},
            "$.occurredAt: datetime has no UTC",
        ),
        ({"items": [ITEM], "user": USER, "occurredAt": "2024-05-01"}, "$.occurredAt: expected a date-time"),
        (
            {"items": [ITEM], "user": USER, "occurredAt": "2024-13-01T00:00:00Z"},
            "$.occurredAt: not an ISO 8601",
        ),
        ({"items": [ITEM], "user": USER, "occurredAt": 1.5}, "$.occurredAt: expected a datetime"),
        (
            {"items": [ITEM], "user": USER, "occurredAt": 10**20},
            "$.occurredAt: epoch milliseconds out of range",
        ),
        ({"items": [ITEM], "user": USER, "orderId": "o1"}, "$.orderId: unexpected key"),
        ({"items": [ITEM], "user": USER, "occuredAt": "2024-05-01T10:00:00Z"}, "$.occuredAt: unexpected key"),
    ],
)
def test_ecommerce_bad_data(data: dict[str, Any], fragment: str) -> None:
    fails(Endpoint.ADD_TO_CART, data, fragment)


def test_not_a_mapping() -> None:
    fails(Endpoint.PURCHASE, ["x"], "must produce an object")  # type: ignore[arg-type]


def test_invalid_phone_is_its_own_permanent_error_and_not_echoed() -> None:
    msg = fails(
        Endpoint.CUSTOM_EVENT,
        {"type": "x", "user": {"phone": "555-0199-77", "email": "secret@x.io"}},
        "$.user.phone",
        InvalidPhoneError,
    )
    assert "0199" not in msg and "secret" not in msg


def test_phone_default_region_and_int_phones() -> None:
    body = build(
        Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"phone": "020 7183 8750"}}, default_region="GB"
    )
    assert body["user"]["phone"] == "+442071838750"
    assert (
        build(Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"phone": 4155550123}})["user"]["phone"] == PHONE
    )


def test_error_messages_never_echo_values() -> None:
    data = {
        "type": "Bad|Type",
        "user": {"email": "jenny.private@", "externalIdentifiers": {"clientUserId": []}},
    }
    msg = fails(Endpoint.CUSTOM_EVENT, data, "$.type")
    assert "jenny" not in msg


def test_timestamps() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert format_timestamp("2021-03-30T14:38:29+0000") == "2021-03-30T14:38:29.000Z"
    assert format_timestamp("2021-03-30T09:38:29.5-05:00") == "2021-03-30T14:38:29.500Z"
    assert format_timestamp(datetime(2021, 3, 30, 14, 38, 29, tzinfo=UTC)) == "2021-03-30T14:38:29.000Z"
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2021, 3, 30))
    with pytest.raises(ValueError, match="expected a datetime"):
        format_timestamp(True)


def test_custom_event_properties() -> None:
    data = {
        "type": "Order Shipped",
        "properties": {
            "when": datetime(2024, 1, 1, tzinfo=UTC),
            "day": date(2024, 1, 2),
            "id": uuid.UUID(int=1),
            "fee": [{"value": Decimal("9.99"), "currency": "USD"}],
            "nested": {"a": (1, 2), "skip": None},
            "gone": "",
            "Order (Id)": 5,
        },
        "externalEventId": external_event_id("orders", 1, 42, "shipped"),
        "occurredAt": "2024-01-01T00:00:00Z",
        "user": {
            "email": "a@b.co",
            "externalIdentifiers": {"customIdentifiers": [{"name": "crm", "value": 7}]},
        },
    }
    body = build(Endpoint.CUSTOM_EVENT, data)
    assert body["properties"] == {
        "when": "2024-01-01T00:00:00.000Z",
        "day": "2024-01-02",
        "id": "00000000-0000-0000-0000-000000000001",
        "fee": [{"value": Decimal("9.99"), "currency": "USD"}],
        "nested": {"a": [1, 2]},
        "Order (Id)": 5,
    }
    assert body["user"]["externalIdentifiers"] == {"customIdentifiers": [{"name": "crm", "value": "7"}]}
    assert b'"value":9.99' in dumps(body)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "Order (Shipped)", "user": USER}, "$.type: contains forbidden character(s) ( )"),
        ({"type": "", "user": USER}, "$.type: required field missing"),
        ({"type": "x", "user": USER, "properties": {"a{": 1}}, '$.properties["a{"]: key contains forbidden'),
        ({"type": "x", "user": USER, "properties": {"a": [{"b,c": 1}]}}, '$.properties.a[0]["b,c"]'),
        (
            {"type": "x", "user": USER, "properties": {"a": b"bytes"}},
            "$.properties.a: unsupported value type",
        ),
        ({"type": "x", "user": USER, "properties": {"a": float("inf")}}, "$.properties.a: must be a finite"),
        (
            {"type": "x", "user": USER, "properties": {"a": Decimal("NaN")}},
            "$.properties.a: must be a finite",
        ),
        ({"type": "x", "user": USER, "properties": {1: "v"}}, "$.properties: keys must be non-empty strings"),
        (
            {"type": "x", "user": USER, "properties": "flat"},
            "$.properties: Input should be a valid dictionary",
        ),
    ],
)
def test_custom_event_bad_data(data: dict[str, Any], fragment: str) -> None:
    fails(Endpoint.CUSTOM_EVENT, data, fragment)


def test_custom_attributes() -> None:
    data = {
        "properties": {
            "age": 24,
            "vip": True,
            "balance": Decimal("50.89"),
            "born": date(1986, 11, 16),
            "nick": None,
            "empty": "",
            "x" * 200: "ok",
            "ratio": 0.5,
        },
        "user": {"externalIdentifiers": {"clientUserId": "u-1"}},
    }
    body = build(Endpoint.CUSTOM_ATTRIBUTES, data)
    assert body["properties"] == {
        "age": 24,
        "vip": True,
        "balance": Decimal("50.89"),
        "born": "1986-11-16",
        "x" * 200: "ok",
        "ratio": 0.5,
    }


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"cities": ["chicago", "new york"]}, "$.properties.cities: attribute values must be scalars"),
        (
            {"address": {"city": "x"}},
            "$.properties.address: attribute values must be scalars (string, number, ",
        ),
        ({"x" * 201: "v"}, "String should have at most 200 characters"),
        ({"a": None}, "$.properties: required field missing"),
        ({"a": float("nan")}, "$.properties.a: must be a finite number"),
        ({"a": object()}, "$.properties.a: attribute values must be scalars"),
        ({"\x1f": False}, "attribute names must not be empty"),  # blank to str.strip (found by hypothesis)
    ],
)
def test_custom_attributes_bad_data(props: dict[str, Any], fragment: str) -> None:
    fails(Endpoint.CUSTOM_ATTRIBUTES, {"properties": props, "user": USER}, fragment)


def test_subscribe_shapes() -> None:
    body = build(
        Endpoint.SUBSCRIBE,
        {
            "user": {"phone": "4155550123", "email": "a@b.co", "externalIdentifiers": {"clientUserId": "u1"}},
            "locale": "en_us",
            "subscriptionType": "transactional",
            "singleOptIn": False,
        },
    )
    assert body == {
        "user": {"phone": PHONE, "email": "a@b.co"},
        "externalIdentifiers": {"clientUserId": "u1"},
        "locale": {"language": "en", "country": "US"},
        "subscriptionType": "TRANSACTIONAL",
        "singleOptIn": False,
    }
    body = build(
        Endpoint.SUBSCRIBE,
        {"user": USER, "signUpSourceId": 12345, "externalIdentifiers": {"shopifyId": 1, "klaviyoId": "k"}},
    )
    assert body["signUpSourceId"] == "12345" and body["externalIdentifiers"] == {
        "shopifyId": "1",
        "klaviyoId": "k",
    }


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"user": USER}, "$: needs signUpSourceId, or both locale and subscriptionType"),
        ({"user": USER, "locale": "en-US"}, "needs signUpSourceId"),
        ({"user": USER, "signUpSourceId": "  "}, "needs signUpSourceId"),
        (
            {"user": USER, "locale": "english", "subscriptionType": "MARKETING"},
            "$.locale: expected language-",
        ),
        (
            {"user": USER, "locale": {"language": "eng", "country": "US"}, "subscriptionType": "MARKETING"},
            "$.locale.language",
        ),
        ({"user": USER, "signUpSourceId": "1", "subscriptionType": "SPAM"}, "$.subscriptionType"),
        (
            {"user": {"email": "a@b.co", "clientUserId": "u"}, "signUpSourceId": "1"},
            "$.user.clientUserId: unexpected key (not in Attentive's schema for this endpoint) (subscribe's user",
        ),
        (
            {"user": {"externalIdentifiers": {"clientUserId": "u"}}, "signUpSourceId": "1"},
            "$.user: needs phone or",
        ),
        (
            {"user": USER, "signUpSourceId": "1", "externalIdentifiers": {"facebookId": "f"}},
            "$.externalIdentifiers.facebookId: unexpected key",
        ),
    ],
)
def test_subscribe_bad_data(data: dict[str, Any], fragment: str) -> None:
    fails(Endpoint.SUBSCRIBE, data, fragment)


def test_unsubscribe() -> None:
    body = build(
        Endpoint.UNSUBSCRIBE,
        {
            "user": {"email": "a@b.co"},
            "subscriptions": [{"type": "marketing", "channel": "email"}],
            "notification": {"language": "fr-CA", "disabled": True},
        },
    )
    assert body["subscriptions"] == [{"type": "MARKETING", "channel": "EMAIL"}]
    fails(
        Endpoint.UNSUBSCRIBE, {"user": USER, "notification": {"language": "de-DE"}}, "$.notification.language"
    )
    fails(
        Endpoint.UNSUBSCRIBE,
        {"user": USER, "subscriptions": [{"type": "MARKETING", "channel": "SMS"}]},
        "$.subscriptions[0].channel",
    )


def test_external_event_id_is_deterministic_uuid5() -> None:
    a = external_event_id("orders", 0, 17, "purchase")
    assert a == external_event_id("orders", 0, 17, "purchase")
    assert uuid.UUID(a).version == 5
    others = {
        external_event_id("orders", 1, 17, "purchase"),
        external_event_id("orders", 0, 18, "purchase"),
        external_event_id("orders", 0, 17, "other"),
        external_event_id("loyalty", 0, 17, "purchase"),
    }
    assert a not in others and len(others) == 4
    assert external_event_id("orders", 0, 17, "purchase") == str(
        uuid.uuid5(
            uuid.uuid5(uuid.NAMESPACE_URL, "urn:attentive-connector:externalEventId"), "orders/0/17/purchase"
        )
    )


def test_me_info_ignores_unknown_fields() -> None:
    me = MeInfo.model_validate({"companyName": "C", "applicationName": "A", "new": 1})
    assert (me.companyName, me.applicationName) == ("C", "A")


# --- property: whatever a rule produces, the body is spec-valid or the record is refused ------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    _text,
    st.floats(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
)
_any_user = st.fixed_dictionaries(
    {},
    optional={
        "phone": st.sampled_from(["+14155550123", "4155550123", "12", "", None, "+442071838750"]),
        "email": st.sampled_from(["a@b.co", "bad", "", None]),
        "externalIdentifiers": st.fixed_dictionaries(
            {},
            optional={
                "clientUserId": _text,
                "customIdentifiers": st.lists(
                    st.fixed_dictionaries({"name": _text, "value": _text}), max_size=2
                ),
            },
        ),
    },
)
_user = st.one_of(st.just({"phone": PHONE}), st.just({"email": "a@b.co", "phone": None}), _any_user)
_id = st.one_of(st.text("abcXYZ019-_ ", min_size=1, max_size=8), _text)
_item = st.fixed_dictionaries(
    {
        "productId": _id,
        "productVariantId": _id,
        "price": st.lists(
            st.fixed_dictionaries(
                {
                    "value": st.one_of(
                        st.decimals(allow_nan=False, allow_infinity=False), st.integers(), _text
                    )
                },
                optional={"currency": st.sampled_from(["USD", "eur", "X"])},
            ),
            min_size=1,
            max_size=2,
        ),
    },
    optional={"quantity": st.integers(0, 100), "name": _text},
)
_ts = st.one_of(st.integers(0, 4_000_000_000_000), st.datetimes(timezones=st.just(UTC)), _text)
_props = st.dictionaries(
    _text,
    st.recursive(
        _scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(_text, c, max_size=3), max_leaves=6
    ),
    max_size=4,
)

_DATA: dict[Endpoint, st.SearchStrategy[dict[str, Any]]] = {
    Endpoint.PURCHASE: st.fixed_dictionaries(
        {"items": st.lists(_item, min_size=1, max_size=2), "user": _user},
        optional={"occurredAt": _ts, "orderId": _text},
    ),
    Endpoint.CUSTOM_EVENT: st.fixed_dictionaries(
        {"type": _id, "user": _user},
        optional={"properties": _props, "occurredAt": _ts, "externalEventId": _text},
    ),
    Endpoint.CUSTOM_ATTRIBUTES: st.fixed_dictionaries(
        {"properties": st.one_of(st.dictionaries(_id, _scalar, max_size=4), _props), "user": _user}
    ),
    Endpoint.SUBSCRIBE: st.fixed_dictionaries(
        {"user": _user},
        optional={
            "signUpSourceId": _id,
            "locale": st.sampled_from(["en-US", "fr-CA", "x", None]),
            "subscriptionType": st.sampled_from(["MARKETING", "TRANSACTIONAL", "x"]),
        },
    ),
}


@pytest.mark.parametrize("endpoint", list(_DATA), ids=str)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_build_body_output_is_always_spec_valid(endpoint: Endpoint, data: st.DataObject) -> None:
    raw: dict[str, Any] = data.draw(_DATA[endpoint])
    try:
        body = build_body(endpoint, raw)
    except RoutingError as exc:
        assert str(exc).startswith(f"{endpoint}: $")
        return
    assert V.validate(endpoint, body) == []
    assert loads(dumps(body)) == loads(dumps(body))  # serialisable


# --- the fast builders (connector.attentive.bodies) answer exactly as the models do -------------------

_wild = st.one_of(_scalar, st.sampled_from(["  ", " x ", "web", "MARKETING", "en-US", "text", "usd", True]))
_DATA_FAST: dict[Endpoint, st.SearchStrategy[dict[str, Any]]] = {
    **_DATA,
    Endpoint.PURCHASE: st.fixed_dictionaries(
        {"items": st.lists(_item, min_size=0, max_size=2), "user": _user},
        optional={
            "occurredAt": st.one_of(_ts, st.none(), st.just("  ")),
            "orderId": st.one_of(_text, st.integers(), st.none()),
            "salesChannel": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"channelType": _wild})),
            "extra": st.one_of(st.none(), _text),
        },
    ),
    Endpoint.PRODUCT_VIEW: st.fixed_dictionaries(
        {"items": st.lists(_item, min_size=1, max_size=2), "user": _user},
        optional={"occurredAt": _ts},
    ),
    Endpoint.UNSUBSCRIBE: st.fixed_dictionaries(
        {"user": st.one_of(_user, st.fixed_dictionaries({}, optional={"phone": _wild, "email": _wild}))},
        optional={
            "subscriptions": st.lists(
                st.fixed_dictionaries({}, optional={"type": _wild, "channel": _wild}), max_size=2
            ),
            "notification": st.fixed_dictionaries(
                {},
                optional={
                    "language": st.sampled_from(["en-US", "fr-CA", " en-US", "", None, "x"]),
                    "disabled": _wild,
                },
            ),
        },
    ),
    Endpoint.SUBSCRIBE: st.fixed_dictionaries(
        {"user": st.one_of(_user, st.fixed_dictionaries({}, optional={"phone": _wild, "email": _wild}))},
        optional={
            "signUpSourceId": st.one_of(_id, st.integers(), st.none()),
            "locale": st.one_of(
                st.sampled_from(["en-US", "fr_ca", "EN-us", "x", " en-US", "", None]),
                st.fixed_dictionaries({}, optional={"language": _wild, "country": _wild}),
            ),
            "subscriptionType": _wild,
            "singleOptIn": _wild,
            "externalIdentifiers": st.fixed_dictionaries(
                {}, optional={"clientUserId": _wild, "shopifyId": _wild, "klaviyoId": st.integers()}
            ),
        },
    ),
}


@pytest.mark.parametrize("endpoint", list(_DATA_FAST), ids=str)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_builder_answers_exactly_as_the_models(endpoint: Endpoint, data: st.DataObject) -> None:
    """Whenever a fast builder returns a body, the pydantic models return the same one (same JSON bytes, so
    the same key order and the same exact decimals); whenever the models refuse, the builder defers to them."""
    raw: dict[str, Any] = data.draw(_DATA_FAST[endpoint])
    try:
        expected: dict[str, Any] | None = validate_body(endpoint, copy.deepcopy(raw))
    except RoutingError:
        expected = None
    try:
        fast = BUILDERS[endpoint](raw, "US")
    except Bail:
        return
    assert expected is not None, ("the builder accepted what the models refuse", raw, fast)
    assert dumps(fast) == dumps(expected)
    assert V.validate(endpoint, fast) == []


# Endpoints without a fast builder (identity, privacy.delete: 10/s and 5/s) always take the models' way.
FAST_SAMPLES = [s for s in DOC_SAMPLES if s[1] in BUILDERS]


@pytest.mark.parametrize(("name", "endpoint", "body"), FAST_SAMPLES, ids=[s[0] for s in FAST_SAMPLES])
def test_fast_builder_takes_the_documented_samples(
    name: str, endpoint: Endpoint, body: dict[str, Any]
) -> None:
    """The documented shapes go the fast way (no fallback), with the models' answer."""
    data = json.loads(json.dumps(body).replace("+13115552368", PHONE), parse_float=Decimal)
    if endpoint is Endpoint.SUBSCRIBE and "externalIdentifiers" in data.get("user", {}):
        data["externalIdentifiers"] = data["user"].pop("externalIdentifiers")
    fast = BUILDERS[endpoint](copy.deepcopy(data), "US")
    assert dumps(fast) == dumps(validate_body(endpoint, data))


def test_fast_builder_typical_purchase() -> None:
    data = {
        "items": [
            {
                "productId": 123,
                "productVariantId": " v1 ",
                "price": [{"value": 0.1}],
                "quantity": 2,
                "name": "  ",
            },
            {
                "productId": "p2",
                "productVariantId": "v2",
                "price": [{"value": Decimal("19.990"), "currency": "eur"}],
            },
        ],
        "occurredAt": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "orderId": 987,
        "user": {"phone": "(415) 555-0123", "email": None, "externalIdentifiers": {"clientUserId": " u1 "}},
        "salesChannel": {"channelType": "web"},
    }
    body = BUILDERS[Endpoint.PURCHASE](data, "US")
    assert body == {
        "items": [
            {
                "productId": "123",
                "productVariantId": "v1",
                "price": [{"value": Decimal("0.1"), "currency": "USD"}],
                "quantity": 2,
            },
            {
                "productId": "p2",
                "productVariantId": "v2",
                "price": [{"value": Decimal("19.990"), "currency": "EUR"}],
            },
        ],
        "occurredAt": "2024-05-01T12:00:00.000Z",
        "user": {"phone": PHONE, "externalIdentifiers": {"clientUserId": "u1"}},
        "orderId": "987",
        "salesChannel": {"channelType": "WEB"},
    }
    assert body == validate_body(Endpoint.PURCHASE, data)
    assert b'"value":19.990' in dumps(body)


@pytest.mark.parametrize(
    ("endpoint", "data"),
    [
        (Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"phone": "12"}}),  # bad phone
        (Endpoint.CUSTOM_EVENT, {"type": "x(y)", "user": USER}),  # forbidden character
        (Endpoint.CUSTOM_EVENT, {"type": "x", "user": USER, "properties": {"a|b": 1}}),
        (
            Endpoint.CUSTOM_EVENT,
            {"type": "x", "user": USER, "occurredAt": "2024-01-01T00:00:00"},
        ),  # no offset
        (Endpoint.PURCHASE, {"items": [], "user": USER}),
        (Endpoint.PURCHASE, {"items": [ITEM], "user": USER, "salesChannel": {"channelType": "MOON"}}),
        (Endpoint.SUBSCRIBE, {"user": USER}),  # no source
        (Endpoint.CUSTOM_ATTRIBUTES, {"properties": {"a": [1]}, "user": USER}),
        (Endpoint.UNSUBSCRIBE, {"user": {}}),
    ],
)
def test_fast_builder_defers_every_bad_record_to_the_models(endpoint: Endpoint, data: dict[str, Any]) -> None:
    with pytest.raises(Bail):
        BUILDERS[endpoint](data, "US")
    with pytest.raises(RoutingError, match=r"\$"):
        build_body(endpoint, data)  # the models' message, naming the field
