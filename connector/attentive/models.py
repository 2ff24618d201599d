"""Typed Attentive request bodies that can only be valid, and :func:`build_body`, the seam rules call.

``build_body(endpoint, data)`` takes ``data`` in Attentive's own JSON shape (what a rule's mapping produced from
a record), and returns the body to send, or raises :class:`RoutingError` / :class:`InvalidPhoneError` (both
permanent: the record is dead-lettered, never retried) with a message naming the field — never the value, which
may be a phone number or an email.

What it does on the way, each from Attentive's docs or spec:

* drops ``None`` and empty/blank strings everywhere, and objects/lists left empty by that ("avoid sending null
  values or empty strings");
* normalises phones to E.164 (``default_region`` for numbers without a country code);
* keeps prices exact: ``value`` becomes a ``Decimal`` (send with :func:`dumps`, which writes it as a JSON number);
* writes ``occurredAt`` (``datetime`` with offset, epoch-millis ``int`` or an ISO 8601 string with offset) as
  RFC 3339 in UTC with milliseconds, ``2021-03-30T14:38:29.000Z``;
* checks event ``type`` and property keys for the forbidden characters, custom attribute values are scalars and
  names ≤ 200 characters, subscribe has ``signUpSourceId`` or ``locale`` + ``subscriptionType``;
* for subscribe, moves ``user.externalIdentifiers`` to the top level where that endpoint wants it.

The spec (``connector/attentive/spec``) stays the source of truth: the tests check every body built here against
:class:`connector.attentive.spec.SpecValidator`.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from connector.attentive import identity
from connector.attentive.bodies import BUILDERS, Bail
from connector.attentive.endpoints import Endpoint
from connector.attentive.fields import CustomIdentifier, Email, Model, NonEmpty, Phone
from connector.attentive.formats import format_timestamp
from connector.attentive.jsonio import dumps, loads
from connector.attentive.spec import (
    ATTRIBUTE_NAME_MAX,
    EVENT_TYPE_FORBIDDEN,
    PROPERTY_KEY_FORBIDDEN,
    json_path,
)
from connector.errors import InvalidPhoneError, RoutingError

__all__ = [
    "MODELS",
    "MeInfo",
    "build_body",
    "dumps",
    "external_event_id",
    "format_timestamp",
    "loads",
    "validate_body",
]

# Fixed namespace so the same record + rule always yields the same externalEventId, on any replica, forever.
EXTERNAL_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:attentive-connector:externalEventId")


# --- field types (shared with identity.py: connector.attentive.fields) --------------------------------


def _timestamp(value: object) -> str:
    try:
        return format_timestamp(value)
    except ValueError as exc:
        raise PydanticCustomError("invalid_timestamp", str(exc)) from None


Timestamp = Annotated[str, BeforeValidator(_timestamp)]


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


# --- users and identifiers ----------------------------------------------------------------------------


class ExternalIdentifiers(Model):
    """``EventUser.externalIdentifiers`` (events and custom attributes)."""

    clientUserId: NonEmpty | None = None
    customIdentifiers: list[CustomIdentifier] | None = None


class SubscriberExternalIdentifiers(Model):
    """``NewExternalIdentifierDto``: the top-level ``externalIdentifiers`` of a subscribe request."""

    clientUserId: NonEmpty | None = None
    shopifyId: NonEmpty | None = None
    klaviyoId: NonEmpty | None = None
    customIdentifiers: list[CustomIdentifier] | None = None


class EventUser(Model):
    """``EventUser``: phone, email and/or external identifiers; at least one."""

    phone: Phone | None = None
    email: Email | None = None
    externalIdentifiers: ExternalIdentifiers | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        ext = self.externalIdentifiers
        if not (self.phone or self.email or (ext and (ext.clientUserId or ext.customIdentifiers))):
            raise PydanticCustomError("no_identifier", "needs phone, email or an external identifier")
        return self


class SubscriberUser(Model):
    """``UserDto1`` (subscribe, unsubscribe): phone and/or email only."""

    phone: Phone | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        if not (self.phone or self.email):
            raise PydanticCustomError("no_identifier", "needs phone or email")
        return self


# --- eCommerce ----------------------------------------------------------------------------------------


class Price(Model):
    value: Annotated[Decimal, Field(allow_inf_nan=False)]
    currency: Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"


class Product(Model):
    productId: NonEmpty
    productVariantId: NonEmpty
    productImage: NonEmpty | None = None
    productUrl: NonEmpty | None = None
    name: NonEmpty | None = None
    price: Annotated[list[Price], Field(min_length=1)]
    quantity: int | None = None


class _EcommerceRequest(Model):
    items: Annotated[list[Product], Field(min_length=1)]
    occurredAt: Timestamp | None = None
    user: EventUser


class ProductViewRequest(_EcommerceRequest):
    pass


class AddToCartRequest(_EcommerceRequest):
    pass


class SalesChannel(Model):
    channelType: Annotated[
        Literal["WEB", "IOS_APP", "ANDROID_APP", "IN_STORE", "PHONE", "OTHER"], BeforeValidator(_upper)
    ]


class PurchaseRequest(_EcommerceRequest):
    orderId: NonEmpty | None = None
    salesChannel: SalesChannel | None = None


# --- custom events ------------------------------------------------------------------------------------


def _check_event_type(value: str) -> str:
    bad = sorted(set(value) & EVENT_TYPE_FORBIDDEN)
    if bad:
        detail = f"contains forbidden character(s) {' '.join(bad)} (not allowed: \" ' ( ) {{ }} [ ] \\ | ,)"
        raise PydanticCustomError("forbidden_characters", "{detail}", {"detail": detail})
    return value


def _json_value(value: Any, where: list[str | int]) -> Any:
    """A property value as plain JSON data; keys checked for Attentive's forbidden characters."""
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{json_path(where)}: must be a finite number")
    if isinstance(value, str | bool | int | Decimal) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{json_path(where)}: must be a finite number")
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return _json_value(value.value, where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"{json_path(where)}: keys must be non-empty strings")
            bad = sorted(set(key) & PROPERTY_KEY_FORBIDDEN)
            if bad:
                raise ValueError(
                    f"{json_path([*where, key])}: key contains forbidden character(s) {' '.join(bad)} "
                    "(not allowed: \" ' { } [ ] \\ | ,)"
                )
            out[key] = _json_value(item, [*where, key])
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, [*where, i]) for i, item in enumerate(value)]
    raise ValueError(f"{json_path(where)}: unsupported value type {type(value).__name__}")


def _event_properties(value: object) -> object:
    if not isinstance(value, Mapping):
        return value  # the dict type reports it
    try:
        return _json_value(value, ["properties"])
    except ValueError as exc:
        raise PydanticCustomError("invalid_property", "{detail}", {"detail": str(exc)}) from None


class CustomEventRequest(Model):
    type: Annotated[NonEmpty, AfterValidator(_check_event_type)]
    properties: Annotated[dict[str, Any] | None, BeforeValidator(_event_properties)] = None
    externalEventId: NonEmpty | None = None
    occurredAt: Timestamp | None = None
    user: EventUser


# --- custom attributes --------------------------------------------------------------------------------


def _attribute_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        raise PydanticCustomError("invalid_attribute", "must be a finite number")
    if isinstance(value, str | bool | int | float | Decimal):
        return value
    kind = (
        "an array" if isinstance(value, list | tuple) else "an object" if isinstance(value, Mapping) else ""
    )
    raise PydanticCustomError(
        "invalid_attribute",
        "attribute values must be scalars (string, number, boolean), got {kind}",
        {"kind": kind or type(value).__name__},
    )


def _non_blank_name(value: str) -> str:
    # The spec check strips names (str.strip: control characters such as \x1f count as blank too).
    if not value.strip():
        raise ValueError("attribute names must not be empty")
    return value


AttributeName = Annotated[
    str, StringConstraints(min_length=1, max_length=ATTRIBUTE_NAME_MAX), AfterValidator(_non_blank_name)
]
AttributeValue = Annotated[Any, BeforeValidator(_attribute_value)]


class CustomAttributesRequest(Model):
    properties: Annotated[dict[AttributeName, AttributeValue], Field(min_length=1)]
    user: EventUser


# --- subscribers --------------------------------------------------------------------------------------


def _locale(value: object) -> object:
    """Accept ``"en-US"`` / ``"en_US"`` as well as ``{"language": "en", "country": "US"}``."""
    if isinstance(value, str):
        lang, sep, country = value.replace("_", "-").partition("-")
        if not sep:
            raise PydanticCustomError("invalid_locale", "expected language-COUNTRY such as en-US")
        return {"language": lang.lower(), "country": country.upper()}
    return value


class Locale(Model):
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


SubscriptionType = Annotated[Literal["MARKETING", "TRANSACTIONAL"], BeforeValidator(_upper)]


class SubscribeRequest(Model):
    user: SubscriberUser
    signUpSourceId: NonEmpty | None = None
    externalIdentifiers: SubscriberExternalIdentifiers | None = None
    locale: Annotated[Locale | None, BeforeValidator(_locale)] = None
    subscriptionType: SubscriptionType | None = None
    singleOptIn: bool | None = None

    @model_validator(mode="after")
    def _source(self) -> Self:
        if not self.signUpSourceId and not (self.locale and self.subscriptionType):
            raise PydanticCustomError(
                "no_source", "needs signUpSourceId, or both locale and subscriptionType"
            )
        return self


class Subscription(Model):
    type: Annotated[Literal["MARKETING", "TRANSACTIONAL", "CHECKOUT_ABANDONED"], BeforeValidator(_upper)]
    channel: Annotated[Literal["TEXT", "EMAIL"], BeforeValidator(_upper)]


class Notification(Model):
    language: Literal["en-US", "fr-CA"] | None = None
    disabled: bool | None = None


class UnsubscribeRequest(Model):
    user: SubscriberUser
    subscriptions: list[Subscription] | None = None
    notification: Notification | None = None


# --- responses ----------------------------------------------------------------------------------------


class MeInfo(BaseModel):
    """``GET /v1/me`` (``GetMeResponseDto``): who the API key belongs to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    companyName: str | None = None
    applicationName: str | None = None
    attentiveDomainName: str | None = None
    contactEmail: str | None = None
    companyId: str | None = None


# --- the seam -----------------------------------------------------------------------------------------

MODELS: dict[Endpoint, type[BaseModel]] = {
    Endpoint.PRODUCT_VIEW: ProductViewRequest,
    Endpoint.ADD_TO_CART: AddToCartRequest,
    Endpoint.PURCHASE: PurchaseRequest,
    Endpoint.CUSTOM_EVENT: CustomEventRequest,
    Endpoint.SUBSCRIBE: SubscribeRequest,
    Endpoint.UNSUBSCRIBE: UnsubscribeRequest,
    Endpoint.CUSTOM_ATTRIBUTES: CustomAttributesRequest,
    **identity.MODELS,  # identity, privacy.delete (connector/attentive/identity.py)
}

_DROP = object()


def _clean(value: Any) -> Any:
    """Drop None, blank strings and the containers they leave empty; Mappings become dicts, tuples lists."""
    if value is None:
        return _DROP
    if isinstance(value, str):
        return value if value.strip() else _DROP
    if isinstance(value, Mapping):
        out = {k: c for k, v in value.items() if (c := _clean(v)) is not _DROP}
        return out if out else _DROP
    if isinstance(value, list | tuple):
        items = [c for v in value if (c := _clean(v)) is not _DROP]
        return items if items else _DROP
    return value


_MESSAGES = {
    "missing": "required field missing (null and empty values count as missing)",
    "extra_forbidden": "unexpected key (not in Attentive's schema for this endpoint)",
}


def _describe(err: Mapping[str, Any], endpoint: Endpoint) -> str:
    loc = [p if not isinstance(p, str) or len(p) <= 60 else p[:40] + "…" for p in err["loc"] if p != "[key]"]
    message = str(_MESSAGES.get(err["type"], err["msg"]))
    if message.startswith("$"):
        return message  # already carries its own (deeper) path
    if err["type"] == "extra_forbidden" and endpoint is Endpoint.SUBSCRIBE and loc[:1] == ["user"]:
        message += " (subscribe's user takes phone and email only)"
    if err["type"] == "list_type" and loc[-1:] == ["price"]:
        message = "must be a list of {value, currency} objects"
    return f"{json_path(loc)}: {message}"


def build_body(
    endpoint: Endpoint,
    data: Mapping[str, Any],
    *,
    default_region: str = "US",
    rule: str | None = None,
) -> dict[str, Any]:
    """Validate and normalise ``data`` (Attentive's JSON shape) into the body for ``endpoint``.

    Returns a plain dict (prices as ``Decimal`` — serialise it with :func:`dumps`). Raises
    :class:`InvalidPhoneError` when a phone can't be made E.164, otherwise :class:`RoutingError`, both with
    ``rule`` set and a message of ``$.path: problem`` parts that never echoes field values.

    The endpoint's fast builder (:mod:`connector.attentive.bodies`, one walk, no pydantic) answers when it
    can vouch for the data; otherwise — rare shapes and every invalid record — :func:`validate_body` does.
    Both give the same body for the same data.
    """
    builder = BUILDERS.get(endpoint)
    if builder is not None and type(data) is dict:
        try:
            return builder(data, default_region)
        except Bail:
            pass
    return validate_body(endpoint, data, default_region=default_region, rule=rule)


def validate_body(
    endpoint: Endpoint,
    data: Mapping[str, Any],
    *,
    default_region: str = "US",
    rule: str | None = None,
) -> dict[str, Any]:
    """:func:`build_body` through the pydantic models only (the reference the fast builders are tested
    against, and the source of every error message)."""
    if not isinstance(data, Mapping):
        raise RoutingError(
            f"{endpoint}: the mapping must produce an object, not {type(data).__name__}", rule=rule
        )
    cleaned = _clean(data)
    body: dict[str, Any] = cleaned if isinstance(cleaned, dict) else {}
    if endpoint is Endpoint.SUBSCRIBE:
        body = _hoist_external_identifiers(body)
    model = MODELS[endpoint]
    try:
        obj = model.model_validate(body, context={"default_region": default_region})
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        text = f"{endpoint}: " + "; ".join(_describe(e, endpoint) for e in errors)
        if any(e["type"] == "invalid_phone" for e in errors):
            raise InvalidPhoneError(text, rule=rule) from None
        raise RoutingError(text, rule=rule) from None
    return obj.model_dump(mode="python", exclude_none=True)


def _hoist_external_identifiers(body: dict[str, Any]) -> dict[str, Any]:
    """Subscribe wants ``externalIdentifiers`` beside ``user``, not in it (unlike the event endpoints)."""
    user = body.get("user")
    if isinstance(user, dict) and "externalIdentifiers" in user and "externalIdentifiers" not in body:
        user = dict(user)
        body = {**body, "user": user, "externalIdentifiers": user.pop("externalIdentifiers")}
    return body


def external_event_id(topic: str, partition: int, offset: int, rule: str) -> str:
    """Deterministic ``externalEventId`` (UUIDv5 of ``topic/partition/offset/rule``): a redelivery of the same
    record through the same rule carries the same id, so Attentive can recognise the duplicate."""
    return str(uuid.uuid5(EXTERNAL_EVENT_ID_NAMESPACE, f"{topic}/{partition}/{offset}/{rule}"))
