"""SpecValidator: the spec's own examples pass; every documented rule and schema constraint is enforced with a
message naming the field and never the value."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import (
    SpecValidator,
    default_validator,
    json_path,
    load_spec,
    openapi_to_json_schema,
)
from tests.unit.attentive_examples import BAD_SHAPES, DOC_SAMPLES, spec_examples

V = default_validator()
ITEM = {"productId": "p1", "productVariantId": "v1", "price": [{"value": 10, "currency": "USD"}]}
EMAIL_USER = {"email": "shopper@example.com"}


def only(problems: list[str], fragment: str) -> None:
    assert problems, "expected a problem"
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("endpoint", list(Endpoint), ids=str)
def test_schema_derived_examples_are_valid(endpoint: Endpoint) -> None:
    assert V.validate(endpoint, spec_examples()[endpoint]) == []


@pytest.mark.parametrize(("name", "endpoint", "body"), DOC_SAMPLES, ids=[s[0] for s in DOC_SAMPLES])
def test_documented_samples_are_valid(name: str, endpoint: Endpoint, body: dict[str, Any]) -> None:
    assert V.validate(endpoint, body) == []


@pytest.mark.parametrize(("name", "endpoint", "body", "fragment"), BAD_SHAPES, ids=[s[0] for s in BAD_SHAPES])
def test_known_bad_shapes_are_rejected(
    name: str, endpoint: Endpoint, body: dict[str, Any], fragment: str
) -> None:
    problems = V.validate(endpoint, body)
    only(problems, fragment)
    assert all(p.startswith("$") for p in problems)


def test_default_validator_is_cached() -> None:
    assert default_validator() is default_validator()


def test_messages_never_echo_values() -> None:
    secret_phone, secret_email = "+1 (555) 867-5309", "jenny@private.example"
    body = {
        "type": "x",
        "user": {"phone": secret_phone, "email": secret_email.replace("@", " at "), "zip": "90210"},
    }
    text = " ".join(V.validate(Endpoint.CUSTOM_EVENT, body))
    assert "867" not in text and "jenny" not in text and "90210" not in text
    assert "$.user.phone" in text and "$.user.email" in text and "$.user.zip" in text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"items": [ITEM]}, "$.user: required field missing"),
        ({"user": EMAIL_USER}, "$.items: required field missing"),
        ({"items": [], "user": EMAIL_USER}, "$.items: must have at least 1 item"),
        ({"items": [{**ITEM, "price": []}], "user": EMAIL_USER}, "$.items[0].price: must have at least 1"),
        (
            {"items": [{**ITEM, "price": [{"currency": "USD"}]}], "user": EMAIL_USER},
            "$.items[0].price[0].value",
        ),
        (
            {"items": [{**ITEM, "price": [{"value": "19.99"}]}], "user": EMAIL_USER},
            "expected number, got string",
        ),
        ({"items": [{**ITEM, "price": [{"value": 1, "currency": "usd"}]}], "user": EMAIL_USER}, "ISO 4217"),
        (
            {"items": [{**ITEM, "price": [{"value": Decimal("NaN")}]}], "user": EMAIL_USER},
            "$.items[0].price[0].value: must be a finite number",
        ),
        ({"items": [{**ITEM, "quantity": 1.5}], "user": EMAIL_USER}, "$.items[0].quantity: expected integer"),
        (
            {"items": [{**ITEM, "productId": " "}], "user": EMAIL_USER},
            "$.items[0].productId: must not be empty",
        ),
        (
            {"items": [ITEM], "user": EMAIL_USER, "occurredAt": "2021-03-30T14:38:29"},
            "$.occurredAt: not a valid",
        ),
        (
            {"items": [ITEM], "user": EMAIL_USER, "occurredAt": "yesterday"},
            "$.occurredAt: not a valid date-time",
        ),
        ({"items": [ITEM], "user": EMAIL_USER, "occurredAt": "2021-02-30T14:38:29Z"}, "$.occurredAt"),
        (
            {"items": [ITEM], "user": EMAIL_USER, "occuredAt": "2021-03-30T14:38:29Z"},
            "$.occuredAt: unknown field",
        ),
        ({"items": [ITEM], "user": {"email": "nope"}}, "$.user.email: not a valid email"),
        ({"items": [ITEM], "user": {"externalIdentifiers": {}}}, "$.user: needs phone, email or an external"),
        (
            {"items": [ITEM], "user": {"externalIdentifiers": {"clientUserId": ""}}},
            "$.user.externalIdentifiers.clientUserId: must not be an empty string",
        ),
        (
            {"items": [ITEM], "user": {"externalIdentifiers": {"customIdentifiers": [{"name": "crm"}]}}},
            "$.user.externalIdentifiers.customIdentifiers[0].value: required",
        ),
        (
            {"items": [ITEM], "user": {"externalIdentifiers": {"customIdentifiers": {"crm": "1"}}}},
            "$.user.externalIdentifiers.customIdentifiers: expected array, got object",
        ),
        ({"items": "p1", "user": EMAIL_USER}, "$.items: expected array, got string"),
    ],
)
def test_ecommerce_problems(body: dict[str, Any], fragment: str) -> None:
    only(V.validate(Endpoint.PURCHASE, body), fragment)


def test_purchase_only_fields_are_purchase_only() -> None:
    body = {"items": [ITEM], "user": EMAIL_USER, "orderId": "o-1", "salesChannel": {"channelType": "WEB"}}
    assert V.validate(Endpoint.PURCHASE, body) == []
    only(V.validate(Endpoint.PRODUCT_VIEW, body), "$.orderId: unknown field")
    only(
        V.validate(Endpoint.PURCHASE, {**body, "salesChannel": {"channelType": "FAX"}}),
        "$.salesChannel.channelType: must be one of",
    )


def test_unknown_top_level_keys_accepted_when_not_strict() -> None:
    lenient = SpecValidator(strict_top_level=False)
    body = {"items": [ITEM], "user": EMAIL_USER, "externalEventId": "e1"}
    assert lenient.validate(Endpoint.PURCHASE, body) == []
    only(V.validate(Endpoint.PURCHASE, body), "$.externalEventId: unknown field")


@pytest.mark.parametrize("char", list("\"'(){}[]\\|,"))
def test_event_type_forbidden_characters(char: str) -> None:
    only(V.validate(Endpoint.CUSTOM_EVENT, {"type": f"Order{char}Shipped", "user": EMAIL_USER}), "$.type")


@pytest.mark.parametrize("char", list("\"'{}[]\\|,"))
def test_property_key_forbidden_characters_at_any_depth(char: str) -> None:
    top = {"type": "Shipped", "user": EMAIL_USER, "properties": {f"a{char}b": 1}}
    nested = {"type": "Shipped", "user": EMAIL_USER, "properties": {"list": [{"ok": {f"k{char}": 1}}]}}
    only(V.validate(Endpoint.CUSTOM_EVENT, top), "$.properties[")
    only(V.validate(Endpoint.CUSTOM_EVENT, nested), "$.properties.list[0].ok[")


def test_property_keys_may_contain_parentheses_and_values_anything() -> None:
    body = {
        "type": "Shipped",
        "user": EMAIL_USER,
        "properties": {"Order (Id)": "x(y)", "n": [1, {"a": None}]},
    }
    assert V.validate(Endpoint.CUSTOM_EVENT, body) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": " ", "user": EMAIL_USER}, "$.type: must not be empty"),
        ({"type": 5, "user": EMAIL_USER}, "$.type: expected string, got integer"),
        ({"type": "x", "user": EMAIL_USER, "properties": []}, "$.properties: expected object, got array"),
        ({"type": "x", "user": EMAIL_USER, "properties": {"": 1}}, "$.properties: keys must not be empty"),
    ],
)
def test_custom_event_problems(body: dict[str, Any], fragment: str) -> None:
    only(V.validate(Endpoint.CUSTOM_EVENT, body), fragment)


@pytest.mark.parametrize(
    ("props", "fragment"),
    [
        ({"a": {"b": 1}}, "$.properties.a: attribute values must be scalars"),
        ({"a": None}, "$.properties.a: null value"),
        ({"x" * 201: "v"}, "longer than 200 characters"),
        ({"": "v"}, "attribute names must not be empty"),
    ],
)
def test_custom_attribute_problems(props: dict[str, Any], fragment: str) -> None:
    only(V.validate(Endpoint.CUSTOM_ATTRIBUTES, {"properties": props, "user": EMAIL_USER}), fragment)


def test_attribute_name_of_200_characters_is_fine() -> None:
    assert V.validate(Endpoint.CUSTOM_ATTRIBUTES, {"properties": {"x" * 200: True}, "user": EMAIL_USER}) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"user": {"phone": "+13115552368"}, "locale": {"language": "en", "country": "US"}},
            "needs signUpSourceId",
        ),
        ({"user": {"phone": "+13115552368"}, "subscriptionType": "MARKETING"}, "needs signUpSourceId"),
        ({"user": {"phone": "+13115552368"}, "signUpSourceId": ""}, "$.signUpSourceId: must not be empty"),
        (
            {
                "user": {"phone": "+13115552368"},
                "locale": {"language": "EN"},
                "subscriptionType": "MARKETING",
            },
            "$.locale.language",
        ),
        (
            {
                "user": {"phone": "+13115552368"},
                "locale": {"language": "en"},
                "subscriptionType": "MARKETING",
            },
            "$.locale.country: required",
        ),
        (
            {"user": {"phone": "+13115552368"}, "signUpSourceId": "1", "subscriptionType": "X"},
            "must be one of",
        ),
        ({"user": {}, "signUpSourceId": "1"}, "$.user: must not be empty"),
        ({"user": {"clientUserId": "u"}, "signUpSourceId": "1"}, "$.user.clientUserId: unexpected key"),
        (
            {
                "user": {"phone": "+13115552368", "externalIdentifiers": {"clientUserId": "u"}},
                "signUpSourceId": "1",
            },
            "put externalIdentifiers at the top level",
        ),
        (
            {
                "user": {"phone": "+13115552368"},
                "signUpSourceId": "1",
                "externalIdentifiers": {"shopifyId": ""},
            },
            "$.externalIdentifiers.shopifyId: must not be an empty string",
        ),
        (
            {"user": {"phone": "+13115552368"}, "signUpSourceId": "1", "singleOptIn": "yes"},
            "expected boolean",
        ),
    ],
)
def test_subscribe_problems(body: dict[str, Any], fragment: str) -> None:
    only(V.validate(Endpoint.SUBSCRIBE, body), fragment)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "$.user: required field missing"),
        ({"user": {"email": "a@b.co"}, "notification": {"language": "de-DE"}}, "$.notification.language"),
        (
            {"user": {"email": "a@b.co"}, "subscriptions": [{"type": "MARKETING", "channel": "SMS"}]},
            "channel",
        ),
        ({"user": {"email": "a@b.co"}, "notification": {"disabled": "true"}}, "expected boolean"),
    ],
)
def test_unsubscribe_problems(body: dict[str, Any], fragment: str) -> None:
    only(V.validate(Endpoint.UNSUBSCRIBE, body), fragment)


def test_body_that_is_not_an_object() -> None:
    only(V.validate(Endpoint.PURCHASE, ["x"]), "$: expected object, got array")


def test_decimals_validate_as_numbers() -> None:
    body = {"items": [{**ITEM, "price": [{"value": Decimal("19.99")}]}], "user": EMAIL_USER}
    assert V.validate(Endpoint.PURCHASE, body) == []


def test_responses_can_be_checked_against_components() -> None:
    ok = {
        "user": {"phone": "+13115552368"},
        "subscriptionResponses": [
            {
                "subscription": {"type": "MARKETING", "channel": "TEXT"},
                "subscriptionCreationStatus": "NEWLY_CREATED",
            }
        ],
    }
    assert V.validate_component("AddSubscriptionsResponseDto", ok) == []
    bad: dict[str, Any] = copy.deepcopy(ok)
    bad["subscriptionResponses"][0]["subscriptionCreationStatus"] = "MAYBE"
    only(
        V.validate_component("AddSubscriptionsResponseDto", bad), "subscriptionCreationStatus: must be one of"
    )
    with pytest.raises(KeyError):
        V.validate_component("NoSuchSchema", {})


def test_openapi_nullable_and_annotations_are_converted() -> None:
    converted = openapi_to_json_schema(
        {
            "type": "object",
            "example": {"a": 1},
            "properties": {
                "a": {"type": "string", "nullable": True, "example": "x"},
                "b": {"type": "string", "enum": ["x"], "nullable": True},
                "example": {"type": "integer"},
            },
        }
    )
    assert converted == {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"type": ["string", "null"], "enum": ["x", None]},
            "example": {"type": "integer"},
        },
    }


def test_nullable_fields_accept_null_when_spec_says_so() -> None:
    spec = load_spec()
    spec = copy.deepcopy(spec)
    spec["components"]["schemas"]["Price"]["properties"]["currency"]["nullable"] = True
    v = SpecValidator(spec)
    body = {"items": [{**ITEM, "price": [{"value": 1, "currency": None}]}], "user": EMAIL_USER}
    assert v.validate(Endpoint.PURCHASE, body) == []
    only(V.validate(Endpoint.PURCHASE, body), "$.items[0].price[0].currency: expected string, got null")


def test_json_path_quotes_odd_keys() -> None:
    assert json_path(["items", 0, "price"]) == "$.items[0].price"
    assert json_path(["properties", "Order Id"]) == '$.properties["Order Id"]'
