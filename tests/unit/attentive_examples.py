"""Request examples for the Attentive endpoints: derived from the vendored spec's own ``example`` values (the way
Attentive's docs render request samples) and the verbatim samples quoted in attentive-api.md (docs + Postman),
plus the known-bad shapes every layer must reject. Shared by the spec, sandbox and client tests."""

from __future__ import annotations

import copy
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import load_spec

_SPEC = load_spec()
_SCHEMAS = _SPEC["components"]["schemas"]


def example_from_schema(schema: dict[str, Any]) -> Any:
    """Sample instance as a docs renderer builds it: the ``example`` if any, else a placeholder per type."""
    if "$ref" in schema:
        return example_from_schema(_SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    if "example" in schema and schema.get("type") != "object":
        return copy.deepcopy(schema["example"])
    if "enum" in schema:
        return next(v for v in schema["enum"] if v != "")
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if "example" in schema and not schema.get("properties"):
            return copy.deepcopy(schema["example"])
        out = {name: example_from_schema(sub) for name, sub in (schema.get("properties") or {}).items()}
        if "example" in schema and isinstance(schema["example"], dict):
            out.update(copy.deepcopy(schema["example"]))
        return out
    if kind == "array":
        return [example_from_schema(schema.get("items", {}))]
    return {"string": "string", "integer": 1, "number": 1.5, "boolean": True}.get(kind or "string", "string")


def spec_examples() -> dict[Endpoint, dict[str, Any]]:
    """One schema-derived request body per endpoint (every documented field filled)."""
    out = {e: example_from_schema(_SCHEMAS[e.schema_name]) for e in Endpoint}
    # The one field without an example whose prose restricts its values ("only supports en-US and fr-CA"):
    # a placeholder "string" would rightly be refused, so use a documented value.
    out[Endpoint.UNSUBSCRIBE]["notification"]["language"] = "en-US"
    # The spec's shopifyId example is the number 123456789000 although the field is a string: send it as text.
    out[Endpoint.IDENTITY]["shopifyId"] = str(out[Endpoint.IDENTITY]["shopifyId"])
    # Privacy subjects have no examples; the "string" placeholders are no phone or email: documented shapes.
    out[Endpoint.PRIVACY_DELETE].update(subjectPhone="+13115552368", subjectEmail="test@gmail.com")
    return out


USER = {
    "phone": "+13115552368",
    "email": "test@gmail.com",
    "externalIdentifiers": {
        "clientUserId": "string",
        "customIdentifiers": [{"name": "string", "value": "string"}],
    },
}

# Verbatim samples from attentive-api.md (docs pages and Attentive's Postman collection); Postman's
# ``{{variables}}`` filled with concrete values.
DOC_SAMPLES: list[tuple[str, Endpoint, dict[str, Any]]] = [
    (
        "docs ecommerce sample",
        Endpoint.PRODUCT_VIEW,
        {
            "items": [
                {
                    "productId": "AB12345",
                    "productVariantId": "CD12345",
                    "name": "T-Shirt",
                    "price": [{"value": 19.99, "currency": "USD"}],
                    "quantity": 1,
                }
            ],
            "occurredAt": "2021-03-30T14:38:29+0000",
            "user": USER,
        },
    ),
    (
        "postman purchase",
        Endpoint.PURCHASE,
        {
            "items": [
                {
                    "productId": "AB12345",
                    "productVariantId": "CD12345",
                    "productImage": "http://my.cdn.com/products/new-product.png",
                    "productUrl": "http://my-store.com/products/shirts/my-shirt",
                    "name": "T-Shirt",
                    "price": [{"value": 19.99, "currency": "USD"}],
                    "quantity": 1,
                }
            ],
            "user": USER,
        },
    ),
    (
        "docs custom event",
        Endpoint.CUSTOM_EVENT,
        {
            "type": "Order Shipped",
            "properties": {
                "mediaUrl": "https://cdn.example.com/images/sample-image.jpg",
                "orderStatusURL": "https://example.com/orderstatus/54321",
                "delivery_date": "May 10",
                "Order Id": "54321",
                "products": ["productId1", "productId2"],
                "shipment": {"carrier": "fedex", "trackingNumber": "12345"},
            },
            "externalEventId": "37fb97a9-6cfd-4983-bd65-68d104d53b70",
            "occurredAt": "2021-03-30T14:38:29.000Z",
            "user": USER,
        },
    ),
    (
        "postman custom event",
        Endpoint.CUSTOM_EVENT,
        {
            "type": "Order Shipped",
            "properties": {
                "orderStatusURL": "example.com/orderstatus/54321",
                "deliveryDate": "2023-03-09T00:00:00Z",
                "orderId": "54321",
                "shippingFee": [{"value": 9.99, "currency": "USD"}],
                "shippingQty": 1,
                "delivered": True,
                "shipment": {"carrier": "fedex", "trackingNumber": "12345"},
            },
            "externalEventId": "37fb97a9-6cfd-4983-bd65-68d104d53b70",
            "occurredAt": "",
            "user": USER,
        },
    ),
    (
        "postman subscribe",
        Endpoint.SUBSCRIBE,
        {
            "user": {"phone": "+13115552368", "email": "test@gmail.com"},
            "signUpSourceId": "123456",
            "externalIdentifiers": {
                "clientUserId": "user-1",
                "shopifyId": "string",
                "klaviyoId": "string",
                "customIdentifiers": [{"name": "string", "value": "string"}],
            },
        },
    ),
    (
        "locale subscribe",
        Endpoint.SUBSCRIBE,
        {
            "user": {"phone": "+13115552368"},
            "locale": {"language": "en", "country": "US"},
            "subscriptionType": "MARKETING",
        },
    ),
    (
        "postman unsubscribe",
        Endpoint.UNSUBSCRIBE,
        {
            "user": {"phone": "+13115552368", "email": "test@gmail.com"},
            "subscriptions": [
                {"type": "MARKETING", "channel": "EMAIL"},
                {"type": "MARKETING", "channel": "TEXT"},
            ],
            "notification": {"language": "en-US"},
        },
    ),
    (
        "identity: link a client user id to a phone",
        Endpoint.IDENTITY,
        {"phone": "+13115552368", "clientUserId": "123456"},
    ),
    (
        "identity: custom identifier accompanied by a client user id",
        Endpoint.IDENTITY,
        {"clientUserId": "123456", "customIdentifiers": [{"name": "loyaltyId", "value": "1122334455"}]},
    ),
    (
        "privacy delete by email with an audit message",
        Endpoint.PRIVACY_DELETE,
        {"subjectEmail": "test@gmail.com", "requestMsg": "The subscriber requested to be removed"},
    ),
    ("privacy delete by client user id only", Endpoint.PRIVACY_DELETE, {"clientUserId": "abc12345"}),
    (
        "docs custom attributes",
        Endpoint.CUSTOM_ATTRIBUTES,
        {
            "properties": {
                "age": "24",
                "birthday": "1986-11-16",
                "sign up": "2021-04-23T16:04:33Z",
                "favorite team": "Minnesota Vikings",
                "Gift card balance": "50.89",
                "VIP": "TRUE",
            },
            "user": USER,
        },
    ),
    (
        "postman custom attributes",
        Endpoint.CUSTOM_ATTRIBUTES,
        {
            "properties": {
                "favoriteColor": "Blue",
                "favoriteTeam": "Seahawks",
                "age": 32,
                "registered": True,
                "registrationDate": "2023-03-09T00:00:00Z",
            },
            "user": USER,
        },
    ),
]

_ITEM = {"productId": "p1", "productVariantId": "v1", "price": [{"value": 10, "currency": "USD"}]}

# (name, endpoint, body, a fragment the error message must contain)
BAD_SHAPES: list[tuple[str, Endpoint, dict[str, Any], str]] = [
    (
        "price as object",
        Endpoint.PURCHASE,
        {"items": [{**_ITEM, "price": {"value": 10, "currency": "USD"}}], "user": {"email": "a@b.co"}},
        "$.items[0].price",
    ),
    (
        "non-E.164 phone",
        Endpoint.CUSTOM_EVENT,
        {"type": "Signed Up", "user": {"phone": "(311) 555-2368"}},
        "$.user.phone",
    ),
    (
        "extra key in user",
        Endpoint.PRODUCT_VIEW,
        {"items": [_ITEM], "user": {"email": "a@b.co", "clientUserId": "u1"}},
        "$.user.clientUserId",
    ),
    ("empty user", Endpoint.ADD_TO_CART, {"items": [_ITEM], "user": {}}, "$.user"),
    (
        "array attribute",
        Endpoint.CUSTOM_ATTRIBUTES,
        {"properties": {"favorite_city": ["chicago", "new york"]}, "user": {"email": "a@b.co"}},
        "$.properties.favorite_city",
    ),
    (
        "forbidden characters in type",
        Endpoint.CUSTOM_EVENT,
        {"type": "Order (Shipped)", "user": {"email": "a@b.co"}},
        "$.type",
    ),
    (
        "subscribe with neither source nor locale",
        Endpoint.SUBSCRIBE,
        {"user": {"phone": "+13115552368"}},
        "signUpSourceId",
    ),
    ("identity: only a client id", Endpoint.IDENTITY, {"clientUserId": "123456"}, "accompanied"),
    (
        "identity: nothing to associate",
        Endpoint.IDENTITY,
        {"phone": "+13115552368", "email": "test@gmail.com"},
        "needs clientUserId or customIdentifiers",
    ),
    (
        "identity: over-long client user id",
        Endpoint.IDENTITY,
        {"phone": "+13115552368", "clientUserId": "u" * 101},
        "$.clientUserId: longer than 100",
    ),
    (
        "identity: over-long custom identifier value",
        Endpoint.IDENTITY,
        {"email": "a@b.co", "customIdentifiers": [{"name": "loyaltyId", "value": "9" * 101}]},
        "$.customIdentifiers[0].value: longer than 100",
    ),
    (
        "identity: non-E.164 phone",
        Endpoint.IDENTITY,
        {"phone": "(311) 555-2368", "clientUserId": "123456"},
        "$.phone",
    ),
]

# Privacy deletions answer 400 with ``PrivacyRequestErrorDto`` (``{"error": "text"}``), hence a list of their own.
PRIVACY_BAD_SHAPES: list[tuple[str, Endpoint, dict[str, Any], str]] = [
    (
        "privacy: no phone, email or client user id",
        Endpoint.PRIVACY_DELETE,
        {"requestMsg": "CCPA deletion request 42"},
        "needs subjectPhone or subjectEmail, else clientUserId",
    ),
    (
        "privacy: non-E.164 phone",
        Endpoint.PRIVACY_DELETE,
        {"subjectPhone": "617-555-0139"},
        "$.subjectPhone",
    ),
    (
        "privacy: empty email",
        Endpoint.PRIVACY_DELETE,
        {"subjectEmail": " ", "clientUserId": "c1"},
        "$.subjectEmail",
    ),
    (
        "privacy: unknown field",
        Endpoint.PRIVACY_DELETE,
        {"subscriberPhone": "+13115552368"},
        "$.subscriberPhone",
    ),
]
