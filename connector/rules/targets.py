"""What each Attentive call accepts from a rule, and of which type (for the static checks).

This restates, per endpoint, the request fields of Attentive's v1 spec that a rule maps in ``fields`` (``user``,
``items``, ``externalIdentifiers`` and ``externalEventId`` come from their own rule sections). A unit test
checks every name here against the vendored spec, so it cannot drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.attentive.endpoints import Endpoint

# Kinds of values (see connector.avro.schema.AvroType.kinds()).
STRING = frozenset({"string", "enum"})
ID = frozenset({"string", "enum", "integer"})  # identifiers: numbers are sent as text
PHONE = frozenset({"string", "integer"})
NUMBER = frozenset({"integer", "number"})
INTEGER = frozenset({"integer"})
BOOLEAN = frozenset({"boolean"})
TIMESTAMP = frozenset({"timestamp", "string", "integer"})  # integer = epoch milliseconds
OBJECT = frozenset({"record", "map"})
ARRAY = frozenset({"array"})
ANY = frozenset({"any"})


@dataclass(frozen=True)
class Target:
    """An Attentive field: the kinds a source may have, allowed literal values, and nested fields."""

    kinds: frozenset[str]
    what: str
    choices: tuple[str, ...] = ()
    fields: dict[str, Target] = field(default_factory=dict)
    items: Target | None = None
    scalar_values: bool = False  # an object whose values must be scalars (custom attributes)


_TS = Target(TIMESTAMP, "a timestamp (timestamp-millis, RFC 3339 text or epoch millis)")
_TEXT = Target(STRING, "text")
_ID = Target(ID, "an identifier (text or integer)")

FIELDS: dict[Endpoint, dict[str, Target]] = {
    Endpoint.PRODUCT_VIEW: {"occurredAt": _TS},
    Endpoint.ADD_TO_CART: {"occurredAt": _TS},
    Endpoint.PURCHASE: {
        "occurredAt": _TS,
        "orderId": _ID,
        "salesChannel": Target(
            OBJECT,
            "an object {channelType}",
            fields={
                "channelType": Target(
                    STRING,
                    "a sales channel",
                    choices=("WEB", "IOS_APP", "ANDROID_APP", "IN_STORE", "PHONE", "OTHER"),
                )
            },
        ),
    },
    Endpoint.CUSTOM_EVENT: {
        "type": Target(STRING, "the event type name (text)"),
        "properties": Target(OBJECT, "an object of event properties"),
        "occurredAt": _TS,
    },
    Endpoint.CUSTOM_ATTRIBUTES: {
        "properties": Target(OBJECT, "an object of attribute values", scalar_values=True),
    },
    Endpoint.SUBSCRIBE: {
        "signUpSourceId": _ID,
        "locale": Target(
            OBJECT | STRING,
            "a locale: text like en-US, or an object {language, country}",
            fields={
                "language": Target(STRING, "a language code"),
                "country": Target(STRING, "a country code"),
            },
        ),
        "subscriptionType": Target(STRING, "a subscription type", choices=("MARKETING", "TRANSACTIONAL")),
        "singleOptIn": Target(BOOLEAN, "true or false"),
    },
    Endpoint.UNSUBSCRIBE: {
        "subscriptions": Target(
            ARRAY,
            "a list of {type, channel}",
            items=Target(
                OBJECT,
                "an object {type, channel}",
                fields={
                    "type": Target(
                        STRING,
                        "a subscription type",
                        choices=("MARKETING", "TRANSACTIONAL", "CHECKOUT_ABANDONED"),
                    ),
                    "channel": Target(STRING, "a channel", choices=("TEXT", "EMAIL")),
                },
            ),
        ),
        "notification": Target(
            OBJECT,
            "an object {language, disabled}",
            fields={
                "language": Target(STRING, "a notification language", choices=("en-US", "fr-CA")),
                "disabled": Target(BOOLEAN, "true or false"),
            },
        ),
    },
    # The person's identifiers come from the rule's user: section (connector/attentive/identity.py).
    Endpoint.IDENTITY: {},
    Endpoint.PRIVACY_DELETE: {"requestMsg": Target(STRING, "an audit message (text, no personal data)")},
}

# Keys of the rule's `fields` that belong elsewhere, with the place to write them instead.
MOVED: dict[str, str] = {
    "user": "the rule's user: section",
    "items": "the rule's items: section",
    "externalIdentifiers": "user: client_user_id / shopify_id / klaviyo_id / custom_identifiers",
    "externalEventId": "the rule's external_event_id: key",
}

USER_FIELDS: dict[str, Target] = {
    "phone": Target(PHONE, "a phone number (text)"),
    "email": Target(STRING, "an email address (text)"),
    "client_user_id": _ID,
    "shopify_id": _ID,
    "klaviyo_id": _ID,
}
CUSTOM_IDENTIFIER = _ID

ITEM_FIELDS: dict[str, tuple[str, Target]] = {
    # rule key -> (Attentive key, target)
    "product_id": ("productId", _ID),
    "variant_id": ("productVariantId", _ID),
    "name": ("name", _TEXT),
    "price": ("price", Target(NUMBER, "a number (decimal, int, long, float or double)")),
    "currency": ("currency", Target(STRING, "an ISO 4217 currency code (text)")),
    "quantity": ("quantity", Target(INTEGER, "a whole number (int or long)")),
    "image_url": ("productImage", _TEXT),
    "product_url": ("productUrl", _TEXT),
}

EXTERNAL_EVENT_ID = _ID
ECOMMERCE = frozenset({Endpoint.PRODUCT_VIEW, Endpoint.ADD_TO_CART, Endpoint.PURCHASE})
SUBSCRIBER_APIS = frozenset({Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE})
# Which user: keys each call accepts beyond phone, email, client_user_id and custom_identifiers.
SHOPIFY_KLAVIYO_APIS = frozenset({Endpoint.SUBSCRIBE, Endpoint.IDENTITY})
