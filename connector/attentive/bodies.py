"""Fast body builders: the per-record path of :func:`connector.attentive.models.build_body`, without pydantic.

A rule's shape (which keys it maps, of which kinds) is checked once, at start-up, by the rule checker; what is
left to check per record depends on the data: phones, emails, timestamps, identifiers, prices, lists that may
be empty. Each builder here walks the data once and returns the finished plain dict — exactly what the pydantic
models in :mod:`connector.attentive.models` would return for the same data (same values, same key order),
that is: ``None`` and blank strings dropped with the containers they leave empty, text stripped, integer ids
as text, phones in E.164, timestamps in RFC 3339 UTC, prices as exact ``Decimal`` s with a currency.

A builder never reports a problem itself: on anything it is not sure about — a bad phone, an unknown key, a
value of an unexpected type, a required field missing — it raises :class:`Bail` and ``build_body`` runs the
pydantic models instead, which produce the body (rare shapes) or the precise ``$.path: problem`` error. So the
models stay the single source of the error messages and the spec tests keep covering every body; a property
test checks that a builder's answer always equals the models'.

``BUILDERS`` is keyed by endpoint; an endpoint without a builder simply uses the models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from connector.attentive.endpoints import Endpoint
from connector.attentive.formats import format_timestamp
from connector.attentive.phones import normalize_phone
from connector.attentive.spec import ATTRIBUTE_NAME_MAX, EVENT_TYPE_FORBIDDEN, PROPERTY_KEY_FORBIDDEN
from connector.errors import InvalidPhoneError
from connector.formats import is_email

__all__ = ["BUILDERS", "Bail", "Builder"]


class Bail(Exception):
    """The fast builder cannot vouch for this data; the validating models decide."""


_BAIL = Bail()
_DROP: Any = object()  # a value the models would drop (None, blank text, an emptied container)

Builder = Callable[[dict[str, Any], str], dict[str, Any]]


# What pydantic strips from text (Unicode White_Space); Python's str.strip() also strips \x1c-\x1f. Text with
# any other whitespace at an edge goes to the models.
_WS = " \t\n\r\x0b\x0c"


def _strip(v: str) -> str:
    s = v.strip(_WS)
    if s and (s[0].isspace() or s[-1].isspace()):
        raise _BAIL
    return s


def _text(v: Any) -> Any:
    """``NonEmpty`` text: stripped; integers become text (``coerce_numbers_to_str``)."""
    t = type(v)
    if t is str:
        return _strip(v) if v.strip() else _DROP
    if t is int:
        return str(v)
    if v is None:
        return _DROP
    raise _BAIL


def _required(v: Any) -> Any:
    if v is _DROP:
        raise _BAIL
    return v


def _phone(v: Any, region: str) -> Any:
    t = type(v)
    if t is str:
        if not v.strip():
            return _DROP
        text = v.strip()
    elif t is int:
        text = str(v)
    elif v is None:
        return _DROP
    else:
        raise _BAIL
    try:
        return normalize_phone(text, region)
    except InvalidPhoneError:
        raise _BAIL from None


def _email(v: Any) -> Any:
    if type(v) is str:
        if not v.strip():
            return _DROP
        s = _strip(v)
        if is_email(s):
            return s
        raise _BAIL
    if v is None:
        return _DROP
    raise _BAIL


def _timestamp(v: Any) -> Any:
    if v is None or (type(v) is str and not v.strip()):
        return _DROP
    if type(v) in (dict, list, tuple):
        raise _BAIL
    try:
        return format_timestamp(v)
    except ValueError:
        raise _BAIL from None


def _obj(v: Any, allowed: frozenset[str]) -> dict[str, Any] | None:
    """``v`` as an object with only ``allowed`` keys; ``None`` for a missing value."""
    if v is None:
        return None
    if type(v) is not dict or not v.keys() <= allowed:
        raise _BAIL
    return v


def _seq(v: Any) -> list[Any] | tuple[Any, ...] | None:
    if v is None:
        return None
    if type(v) is not list and type(v) is not tuple:
        raise _BAIL
    return v


def _upper_choice(v: Any, choices: frozenset[str]) -> Any:
    if v is None:
        return _DROP
    if type(v) is not str:
        raise _BAIL
    s = v.strip()
    if not s:
        return _DROP
    s = s.upper()
    if s not in choices:
        raise _BAIL
    return s


def _bool(v: Any) -> Any:
    if v is None:
        return _DROP
    if type(v) is not bool:
        raise _BAIL
    return v


# --- users and identifiers ----------------------------------------------------------------------------

_CUSTOM_ID_KEYS = frozenset({"name", "value"})


def _custom_identifiers(v: Any) -> Any:
    items = _seq(v)
    if items is None:
        return _DROP
    out = []
    for item in items:
        d = _obj(item, _CUSTOM_ID_KEYS)
        if d is None:
            continue
        name, value = _text(d.get("name")), _text(d.get("value"))
        if name is _DROP and value is _DROP:
            continue  # an element left empty is dropped with it
        out.append({"name": _required(name), "value": _required(value)})
    return out if out else _DROP


_EXT_KEYS = frozenset({"clientUserId", "customIdentifiers"})
_SUB_EXT_KEYS = frozenset({"clientUserId", "shopifyId", "klaviyoId", "customIdentifiers"})


def _external(v: Any, allowed: frozenset[str]) -> Any:
    d = _obj(v, allowed)
    if d is None:
        return _DROP
    out: dict[str, Any] = {}
    for key in ("clientUserId", "shopifyId", "klaviyoId"):
        if key in d:
            value = _text(d[key])
            if value is not _DROP:
                out[key] = value
    if "customIdentifiers" in d:
        custom = _custom_identifiers(d["customIdentifiers"])
        if custom is not _DROP:
            out["customIdentifiers"] = custom
    return out if out else _DROP


_EVENT_USER_KEYS = frozenset({"phone", "email", "externalIdentifiers"})
_SUBSCRIBER_KEYS = frozenset({"phone", "email"})


def _user(v: Any, region: str, allowed: frozenset[str]) -> dict[str, Any]:
    """``EventUser`` (events, attributes) or ``UserDto1`` (subscribe, unsubscribe): at least one identifier."""
    d = _obj(v, allowed)
    if d is None:
        raise _BAIL
    out: dict[str, Any] = {}
    if "phone" in d:
        phone = _phone(d["phone"], region)
        if phone is not _DROP:
            out["phone"] = phone
    if "email" in d:
        email = _email(d["email"])
        if email is not _DROP:
            out["email"] = email
    if "externalIdentifiers" in d:
        ext = _external(d["externalIdentifiers"], _EXT_KEYS)
        if ext is not _DROP:
            out["externalIdentifiers"] = ext
    if not out:
        raise _BAIL  # no identifier: the models say which
    return out


# --- eCommerce ----------------------------------------------------------------------------------------

_PRICE_KEYS = frozenset({"value", "currency"})
_PRODUCT_KEYS = frozenset(
    {"productId", "productVariantId", "productImage", "productUrl", "name", "price", "quantity"}
)
_PRODUCT_TEXT = ("productImage", "productUrl", "name")


def _amount(v: Any) -> Any:
    t = type(v)
    if t is Decimal:
        if not v.is_finite():
            raise _BAIL
        return v
    if t is int:
        return Decimal(v)
    if t is float:
        if not math.isfinite(v):
            raise _BAIL
        return Decimal(str(v))  # as pydantic reads a float: its shortest repr, not its binary expansion
    if v is None:
        return _DROP
    raise _BAIL  # text and anything else: the models parse it


def _currency(v: Any) -> Any:
    if v is None:
        return _DROP
    if type(v) is not str:
        raise _BAIL
    s = v.strip()
    if not s:
        return _DROP
    s = s.upper()
    if len(s) != 3 or not ("A" <= s[0] <= "Z" and "A" <= s[1] <= "Z" and "A" <= s[2] <= "Z"):
        raise _BAIL
    return s


def _prices(v: Any) -> Any:
    items = _seq(v)
    if items is None:
        return _DROP
    out = []
    for item in items:
        d = _obj(item, _PRICE_KEYS)
        if d is None:
            continue
        value = _amount(d.get("value"))
        currency = _currency(d.get("currency"))
        if value is _DROP:
            if currency is _DROP:
                continue
            raise _BAIL
        out.append({"value": value, "currency": "USD" if currency is _DROP else currency})
    return out if out else _DROP


def _items(v: Any) -> list[dict[str, Any]]:
    items = _seq(v)
    if items is None:
        raise _BAIL
    out = []
    for item in items:
        d = _obj(item, _PRODUCT_KEYS)
        if d is None:
            continue
        product: dict[str, Any] = {}
        for key in ("productId", "productVariantId", *_PRODUCT_TEXT):
            if key in d:
                value = _text(d[key])
                if value is not _DROP:
                    product[key] = value
        if "price" in d:
            price = _prices(d["price"])
            if price is not _DROP:
                product["price"] = price
        quantity = d.get("quantity")
        if quantity is not None:
            if type(quantity) is not int:
                raise _BAIL
            product["quantity"] = quantity
        if not product:
            continue  # an element left empty is dropped with it
        if "productId" not in product or "productVariantId" not in product or "price" not in product:
            raise _BAIL
        # The models' field order: productId, productVariantId, productImage, productUrl, name, price, quantity.
        out.append(product)  # built in the models' field order
    if not out:
        raise _BAIL
    return out


_CHANNELS = frozenset({"WEB", "IOS_APP", "ANDROID_APP", "IN_STORE", "PHONE", "OTHER"})
_ECOMMERCE_KEYS = frozenset({"items", "occurredAt", "user"})
_PURCHASE_KEYS = _ECOMMERCE_KEYS | {"orderId", "salesChannel"}
_SALES_CHANNEL_KEYS = frozenset({"channelType"})


def _ecommerce(data: dict[str, Any], region: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not data.keys() <= allowed:
        raise _BAIL
    body: dict[str, Any] = {"items": _items(data.get("items"))}
    occurred = _timestamp(data.get("occurredAt"))
    if occurred is not _DROP:
        body["occurredAt"] = occurred
    body["user"] = _user(data.get("user"), region, _EVENT_USER_KEYS)
    if "orderId" in data:
        order = _text(data["orderId"])
        if order is not _DROP:
            body["orderId"] = order
    channel = _obj(data.get("salesChannel"), _SALES_CHANNEL_KEYS)
    if channel is not None:
        kind = _upper_choice(channel.get("channelType"), _CHANNELS)
        if kind is not _DROP:
            body["salesChannel"] = {"channelType": kind}
    return body


def _product_view(data: dict[str, Any], region: str) -> dict[str, Any]:
    return _ecommerce(data, region, _ECOMMERCE_KEYS)


def _purchase(data: dict[str, Any], region: str) -> dict[str, Any]:
    return _ecommerce(data, region, _PURCHASE_KEYS)


# --- custom events and attributes ---------------------------------------------------------------------


def _json(v: Any) -> Any:
    """A property value: cleaned (None/blank/emptied dropped) and checked in the same walk."""
    t = type(v)
    if t is str:
        return v if v.strip() else _DROP
    if t is int or t is bool:
        return v
    if t is dict:
        out = {}
        for key, item in v.items():
            c = _json(item)
            if c is _DROP:
                continue
            if type(key) is not str or not key.strip() or not PROPERTY_KEY_FORBIDDEN.isdisjoint(key):
                raise _BAIL
            out[key] = c
        return out if out else _DROP
    if t is list or t is tuple:
        items = [c for item in v if (c := _json(item)) is not _DROP]
        return items if items else _DROP
    if t is float:
        if not math.isfinite(v):
            raise _BAIL
        return v
    if t is Decimal:
        if not v.is_finite():
            raise _BAIL
        return v
    if v is None:
        return _DROP
    raise _BAIL  # datetimes, enums, UUIDs, …: the models convert them


def _properties(v: Any) -> Any:
    if v is None:
        return _DROP
    if type(v) is not dict:
        raise _BAIL
    out = _json(v)
    if out is not _DROP:
        for key in out:
            if key != key.strip():  # the models strip top-level keys (two may then collide)
                raise _BAIL
    return out


_CUSTOM_EVENT_KEYS = frozenset({"type", "properties", "externalEventId", "occurredAt", "user"})


def _custom_event(data: dict[str, Any], region: str) -> dict[str, Any]:
    if not data.keys() <= _CUSTOM_EVENT_KEYS:
        raise _BAIL
    kind = _required(_text(data.get("type")))
    if not EVENT_TYPE_FORBIDDEN.isdisjoint(kind):
        raise _BAIL
    body: dict[str, Any] = {"type": kind}
    props = _properties(data.get("properties"))
    if props is not _DROP:
        body["properties"] = props
    if "externalEventId" in data:
        event_id = _text(data["externalEventId"])
        if event_id is not _DROP:
            body["externalEventId"] = event_id
    occurred = _timestamp(data.get("occurredAt"))
    if occurred is not _DROP:
        body["occurredAt"] = occurred
    body["user"] = _user(data.get("user"), region, _EVENT_USER_KEYS)
    return body


_ATTRIBUTES_KEYS = frozenset({"properties", "user"})


def _attribute(v: Any) -> Any:
    t = type(v)
    if t is str:
        return v if v.strip() else _DROP
    if t is int or t is bool:
        return v
    if t is float:
        if not math.isfinite(v):
            raise _BAIL
        return v
    if t is Decimal:
        if not v.is_finite():
            raise _BAIL
        return v
    if v is None:
        return _DROP
    raise _BAIL  # lists/objects are refused by the models, dates converted by them


def _custom_attributes(data: dict[str, Any], region: str) -> dict[str, Any]:
    if not data.keys() <= _ATTRIBUTES_KEYS:
        raise _BAIL
    raw = data.get("properties")
    if type(raw) is not dict:
        raise _BAIL
    props = {}
    for key, value in raw.items():
        c = _attribute(value)
        if c is _DROP:
            continue
        if type(key) is not str or not 0 < len(key) <= ATTRIBUTE_NAME_MAX or key != key.strip():
            raise _BAIL
        props[key] = c
    if not props:
        raise _BAIL
    return {"properties": props, "user": _user(data.get("user"), region, _EVENT_USER_KEYS)}


# --- subscribers --------------------------------------------------------------------------------------

_SUBSCRIBE_KEYS = frozenset(
    {"user", "signUpSourceId", "externalIdentifiers", "locale", "subscriptionType", "singleOptIn"}
)
_LOCALE_KEYS = frozenset({"language", "country"})
_SUBSCRIPTION_TYPES = frozenset({"MARKETING", "TRANSACTIONAL"})


def _two_letters(v: Any, lower: bool) -> bool:
    return (
        type(v) is str and len(v) == 2 and all(("a" <= c <= "z") if lower else ("A" <= c <= "Z") for c in v)
    )


def _locale(v: Any) -> Any:
    if v is None:
        return _DROP
    lang: Any
    country: Any
    if type(v) is str:
        if not v.strip():
            return _DROP
        lang, sep, country = v.replace("_", "-").partition("-")
        if not sep:
            raise _BAIL
        lang, country = lang.lower(), country.upper()
    else:
        d = _obj(v, _LOCALE_KEYS)
        assert d is not None
        lang, country = d.get("language"), d.get("country")
        if lang is None and country is None:
            return _DROP
    if not (_two_letters(lang, True) and _two_letters(country, False)):
        raise _BAIL
    return {"language": lang, "country": country}


def _subscribe(data: dict[str, Any], region: str) -> dict[str, Any]:
    if not data.keys() <= _SUBSCRIBE_KEYS:
        raise _BAIL
    user = data.get("user")
    if type(user) is dict and "externalIdentifiers" in user:
        raise _BAIL  # the models move it beside user
    body: dict[str, Any] = {"user": _user(user, region, _SUBSCRIBER_KEYS)}
    source = _text(data.get("signUpSourceId"))
    if source is not _DROP:
        body["signUpSourceId"] = source
    ext = _external(data.get("externalIdentifiers"), _SUB_EXT_KEYS)
    if ext is not _DROP:
        body["externalIdentifiers"] = ext
    locale = _locale(data.get("locale"))
    if locale is not _DROP:
        body["locale"] = locale
    kind = _upper_choice(data.get("subscriptionType"), _SUBSCRIPTION_TYPES)
    if kind is not _DROP:
        body["subscriptionType"] = kind
    opt_in = _bool(data.get("singleOptIn"))
    if opt_in is not _DROP:
        body["singleOptIn"] = opt_in
    if source is _DROP and (locale is _DROP or kind is _DROP):
        raise _BAIL
    return body


_UNSUBSCRIBE_KEYS = frozenset({"user", "subscriptions", "notification"})
_SUBSCRIPTION_KEYS = frozenset({"type", "channel"})
_UNSUB_TYPES = frozenset({"MARKETING", "TRANSACTIONAL", "CHECKOUT_ABANDONED"})
_UNSUB_CHANNELS = frozenset({"TEXT", "EMAIL"})
_NOTIFICATION_KEYS = frozenset({"language", "disabled"})
_NOTIFICATION_LANGUAGES = frozenset({"en-US", "fr-CA"})


def _unsubscribe(data: dict[str, Any], region: str) -> dict[str, Any]:
    if not data.keys() <= _UNSUBSCRIBE_KEYS:
        raise _BAIL
    body: dict[str, Any] = {"user": _user(data.get("user"), region, _SUBSCRIBER_KEYS)}
    subscriptions = _seq(data.get("subscriptions"))
    if subscriptions is not None:
        out = []
        for item in subscriptions:
            d = _obj(item, _SUBSCRIPTION_KEYS)
            if d is None:
                continue
            kind = _upper_choice(d.get("type"), _UNSUB_TYPES)
            channel = _upper_choice(d.get("channel"), _UNSUB_CHANNELS)
            if kind is _DROP and channel is _DROP:
                continue
            out.append({"type": _required(kind), "channel": _required(channel)})
        if out:
            body["subscriptions"] = out
    notification = _obj(data.get("notification"), _NOTIFICATION_KEYS)
    if notification is not None:
        note: dict[str, Any] = {}
        language = notification.get("language")
        if language is not None and not (type(language) is str and not language.strip()):
            if language not in _NOTIFICATION_LANGUAGES:
                raise _BAIL
            note["language"] = language
        disabled = _bool(notification.get("disabled"))
        if disabled is not _DROP:
            note["disabled"] = disabled
        if note:
            body["notification"] = note
    return body


BUILDERS: dict[Endpoint, Builder] = {
    Endpoint.PRODUCT_VIEW: _product_view,
    Endpoint.ADD_TO_CART: _product_view,
    Endpoint.PURCHASE: _purchase,
    Endpoint.CUSTOM_EVENT: _custom_event,
    Endpoint.CUSTOM_ATTRIBUTES: _custom_attributes,
    Endpoint.SUBSCRIBE: _subscribe,
    Endpoint.UNSUBSCRIBE: _unsubscribe,
}
