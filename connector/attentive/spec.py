"""Check request bodies against Attentive's own v1 OpenAPI spec, plus the rules the schema can't express.

Two layers, both reported the same way (a list of problems, each starting with the JSON path of the field):

1. **The spec's schemas.** The vendored ``attentive-v1-openapi.json`` is loaded once, its
   ``components.schemas`` converted from OpenAPI 3.0 dialect to plain JSON Schema (``nullable`` → a ``null``
   type, OpenAPI-only keywords dropped) and checked with :mod:`jsonschema` (Draft 4 semantics, which is what
   OpenAPI 3.0's schema object is based on: boolean ``exclusiveMinimum``, ``$ref`` siblings ignored). ``$ref``
   s resolve through a :mod:`referencing` registry, so nothing here re-describes Attentive's shapes by hand.
2. **The documented rules the schema leaves to prose**: E.164 phones, the forbidden characters in custom event
   ``type`` and property keys, scalar-only custom attributes with names ≤ 200 characters, subscribe's
   ``signUpSourceId``-or-``locale``+``subscriptionType``, a non-empty ``user`` with only the allowed keys, a
   non-empty ``items``/``price``, notification languages, locale codes; identity's "a client user or custom
   identifier needs to be accompanied by at least one other identifier" and its 100-character limits; a
   privacy deletion's ``subjectPhone`` or ``subjectEmail``, else ``clientUserId``.

The validator is deliberately a little stricter than Attentive where Attentive's docs say "avoid" (empty
identifiers) and where Attentive would silently ignore a mistake (an unknown top-level key such as the
misspelled ``occuredAt`` a peer integration shipped): those are bugs in the sender, and the sandbox exists to
catch them. Pass ``strict_top_level=False`` to accept unknown top-level keys like Attentive does.

Messages never repeat field *values* (they may be phones or emails), only paths, keys and expected shapes.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from connector.attentive.endpoints import Endpoint
from connector.formats import is_email

SPEC_PATH = Path(__file__).with_name("spec") / "attentive-v1-openapi.json"
_SPEC_URI = "urn:attentive-connector:attentive-v1-openapi"

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# ISO 8601 / RFC 3339 date-time with a *required* offset. ``+0000`` (no colon) is accepted because it is the
# example in Attentive's own eCommerce schemas.
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:?\d{2})$")

EVENT_TYPE_FORBIDDEN = frozenset("\"'(){}[]\\|,")
# Union of the sets Attentive documents in different places (REST reference, GraphQL page), see module doc.
PROPERTY_KEY_FORBIDDEN = frozenset("\"'{}[]\\|,")
ATTRIBUTE_NAME_MAX = 200
# Identity API: "There is a 100 character limit" on email, shopifyId, klaviyoId, clientUserId and
# customIdentifiers (applied to each custom identifier's name and value).
IDENTIFIER_MAX = 100
IDENTITY_LIMITED = ("email", "shopifyId", "klaviyoId", "clientUserId")
NOTIFICATION_LANGUAGES = ("en-US", "fr-CA")

# Keys allowed inside ``user``: EventUser (events, attributes) vs UserDto1 (subscribe, unsubscribe).
_EVENT_USER_KEYS = ("phone", "email", "externalIdentifiers")
_SUBSCRIBER_USER_KEYS = ("phone", "email")

# OpenAPI 3.0 schema keywords that are not JSON Schema (or only annotate); dropped before validation.
_OPENAPI_ONLY = frozenset({"nullable", "discriminator", "xml", "externalDocs", "example", "deprecated"})


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The vendored OpenAPI document as parsed JSON."""
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def openapi_to_json_schema(node: Any) -> Any:
    """Convert an OpenAPI 3.0 schema (tree) to Draft 4 JSON Schema.

    ``nullable: true`` becomes ``type: [T, "null"]`` (and adds ``None`` to an ``enum``); annotation-only
    OpenAPI keywords are removed. Property *names* that happen to equal a keyword (a property called
    ``example``) are kept: only schema-object keys are touched.
    """
    if isinstance(node, list):
        return [openapi_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key in _OPENAPI_ONLY:
            continue
        else:
            out[key] = openapi_to_json_schema(value)
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True  # format applies to strings only; ``type`` reports the rest
    if value == "":
        # Attentive's own Postman collection sends ``"occurredAt": ""`` (meaning "now"); accept it.
        return True
    if not _DATETIME_RE.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_datetime)
    return checker


def json_path(parts: Iterable[str | int]) -> str:
    """``$.items[0].price`` style path; keys that aren't identifiers are quoted (``$.properties['Order Id']``)."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p):
            out += f".{p}"
        else:
            out += "[" + json.dumps(p, ensure_ascii=False) + "]"
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _describe(error: ValidationError) -> list[str]:
    """Messages for one schema error, naming the path and never the offending value."""
    path = list(error.absolute_path)
    kw, inst = error.validator, error.instance
    expected: Any = error.validator_value
    schema: Any = error.schema
    if kw == "required" and isinstance(inst, Mapping):
        missing = [k for k in expected if k not in inst]
        return [f"{json_path([*path, k])}: required field missing" for k in missing]
    if kw == "additionalProperties" and isinstance(inst, Mapping):
        allowed = sorted((schema.get("properties") or {}).keys())
        extra = sorted(k for k in inst if k not in allowed)
        return [f"{json_path([*path, k])}: unexpected key (allowed: {', '.join(allowed)})" for k in extra]
    where = json_path(path)
    if kw == "type":
        want = " or ".join(expected) if isinstance(expected, list) else expected
        return [f"{where}: expected {want}, got {_json_type(inst)}"]
    if kw == "enum":
        return [f"{where}: must be one of {', '.join(json.dumps(v) for v in expected)}"]
    if kw == "minItems":
        return [f"{where}: must have at least {expected} item(s)"]
    if kw == "minProperties":
        return [f"{where}: must not be empty"]
    if kw == "format":
        hint = (
            " (RFC 3339 with a UTC offset, e.g. 2021-03-30T14:38:29.000Z)" if expected == "date-time" else ""
        )
        return [f"{where}: not a valid {expected}{hint}"]
    return [f"{where}: fails {kw} {json.dumps(expected, default=str)}"]


class SpecValidator:
    """Validates request bodies for each :class:`Endpoint` against the spec and the documented rules.

    Build it once (loading and converting the spec takes a moment); :func:`default_validator` caches one.
    """

    def __init__(self, spec: Mapping[str, Any] | None = None, *, strict_top_level: bool = True) -> None:
        raw = dict(spec) if spec is not None else load_spec()
        schemas = openapi_to_json_schema(raw["components"]["schemas"])
        self._schemas: dict[str, dict[str, Any]] = schemas
        resource: Resource[Any] = DRAFT4.create_resource({"components": {"schemas": schemas}})
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self._format_checker = _format_checker()
        self._validators: dict[str, Draft4Validator] = {}
        self.strict_top_level = strict_top_level

    def _validator(self, schema_name: str) -> Draft4Validator:
        v = self._validators.get(schema_name)
        if v is None:
            if schema_name not in self._schemas:
                raise KeyError(f"no schema {schema_name!r} in the spec's components.schemas")
            v = Draft4Validator(
                {"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"},
                registry=self._registry,
                format_checker=self._format_checker,
            )
            self._validators[schema_name] = v
        return v

    def schema(self, schema_name: str) -> dict[str, Any]:
        """The converted JSON Schema of a spec component (``$ref`` s left in place)."""
        return self._schemas[schema_name]

    def validate_component(self, schema_name: str, instance: Any) -> list[str]:
        """Problems of ``instance`` against one ``components.schemas`` entry (schema layer only).

        Used for responses too (the sandbox's tests check its answers are spec-shaped).
        """
        errors = sorted(
            self._validator(schema_name).iter_errors(instance), key=lambda e: list(e.absolute_path)
        )
        return _dedupe(m for e in errors for m in _describe(e))

    def validate(self, endpoint: Endpoint, body: Any) -> list[str]:
        """Every problem with ``body`` as the request of ``endpoint``; empty when Attentive would accept it."""
        problems = self.validate_component(endpoint.schema_name, body)
        if isinstance(body, Mapping):
            problems.extend(self._rules(endpoint, body))
        return _dedupe(problems)

    def is_valid(self, endpoint: Endpoint, body: Any) -> bool:
        return not self.validate(endpoint, body)

    # --- the documented rules the schema doesn't express ---------------------------------------------

    def _rules(self, endpoint: Endpoint, body: Mapping[str, Any]) -> Iterator[str]:
        if self.strict_top_level:
            known = self._schemas[endpoint.schema_name].get("properties", {})
            for key in body:
                if key not in known:
                    yield (
                        f"{json_path([key])}: unknown field (Attentive ignores it silently; "
                        f"known: {', '.join(sorted(known))})"
                    )
        subscriber = endpoint in (Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE)
        user = body.get("user")
        if isinstance(user, Mapping):
            yield from _user_rules(user, subscriber=subscriber)
        ext = body.get("externalIdentifiers")
        if subscriber and isinstance(ext, Mapping):
            yield from _external_identifier_rules(ext, ["externalIdentifiers"])
        if endpoint in (Endpoint.PRODUCT_VIEW, Endpoint.ADD_TO_CART, Endpoint.PURCHASE):
            yield from _ecommerce_rules(body)
        elif endpoint is Endpoint.CUSTOM_EVENT:
            yield from _custom_event_rules(body)
        elif endpoint is Endpoint.CUSTOM_ATTRIBUTES:
            yield from _custom_attribute_rules(body)
        elif endpoint is Endpoint.SUBSCRIBE:
            yield from _subscribe_rules(body)
        elif endpoint is Endpoint.UNSUBSCRIBE:
            yield from _unsubscribe_rules(body)
        elif endpoint is Endpoint.IDENTITY:
            yield from _identity_rules(body)
        elif endpoint is Endpoint.PRIVACY_DELETE:
            yield from _privacy_delete_rules(body)


def _dedupe(messages: Iterable[str]) -> list[str]:
    out: list[str] = []
    for m in messages:
        if m not in out:
            out.append(m)
    return out


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _user_rules(user: Mapping[str, Any], *, subscriber: bool) -> Iterator[str]:
    allowed = _SUBSCRIBER_USER_KEYS if subscriber else _EVENT_USER_KEYS
    if subscriber:  # EventUser's schema already forbids extra keys; UserDto1's doesn't, Attentive's docs do.
        for key in user:
            if key not in allowed:
                hint = " (put externalIdentifiers at the top level)" if key == "externalIdentifiers" else ""
                yield f"{json_path(['user', key])}: unexpected key (allowed: {', '.join(allowed)}){hint}"
    if not user:
        yield "$.user: must not be empty"
        return
    phone, email = user.get("phone"), user.get("email")
    if isinstance(phone, str) and not E164_RE.match(phone):
        yield "$.user.phone: not an E.164 phone number ('+', country code and number, digits only)"
    if isinstance(email, str) and not is_email(email):
        yield "$.user.email: not a valid email address"
    ext = user.get("externalIdentifiers") if not subscriber else None
    if isinstance(ext, Mapping):
        yield from _external_identifier_rules(ext, ["user", "externalIdentifiers"])
    has_ext = isinstance(ext, Mapping) and (
        bool(ext.get("clientUserId")) or bool(ext.get("customIdentifiers"))
    )
    if not phone and not email and not has_ext:
        need = "phone or email" if subscriber else "phone, email or an external identifier"
        yield f"$.user: needs {need}"


def _external_identifier_rules(ext: Mapping[str, Any], where: list[str | int]) -> Iterator[str]:
    for key, value in ext.items():
        if _blank(value):
            yield f"{json_path([*where, key])}: must not be an empty string (omit the field instead)"
    customs = ext.get("customIdentifiers")
    if isinstance(customs, list):
        for i, item in enumerate(customs):
            if not isinstance(item, Mapping):
                continue
            for part in ("name", "value"):
                if not isinstance(item.get(part), str) or _blank(item.get(part)):
                    yield f"{json_path([*where, 'customIdentifiers', i, part])}: required, non-empty string"


def _ecommerce_rules(body: Mapping[str, Any]) -> Iterator[str]:
    items = body.get("items")
    if isinstance(items, list) and not items:
        yield "$.items: must have at least 1 item"
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, Mapping):
            continue
        for key in ("productId", "productVariantId"):
            if _blank(item.get(key)):
                yield f"{json_path(['items', i, key])}: must not be empty"
        prices = item.get("price")
        for j, price in enumerate(prices if isinstance(prices, list) else ()):
            if not isinstance(price, Mapping):
                continue
            value = price.get("value")
            if isinstance(value, float | Decimal) and not math.isfinite(value):
                yield f"{json_path(['items', i, 'price', j, 'value'])}: must be a finite number"
            currency = price.get("currency")
            if isinstance(currency, str) and not re.fullmatch(r"[A-Z]{3}", currency):
                yield f"{json_path(['items', i, 'price', j, 'currency'])}: must be an ISO 4217 code like USD"


def _custom_event_rules(body: Mapping[str, Any]) -> Iterator[str]:
    etype = body.get("type")
    if isinstance(etype, str):
        if not etype.strip():
            yield "$.type: must not be empty"
        bad = sorted(set(etype) & EVENT_TYPE_FORBIDDEN)
        if bad:
            yield f"$.type: contains forbidden character(s) {' '.join(bad)} (not allowed: \" ' ( ) {{ }} [ ] \\ | ,)"
    props = body.get("properties")
    if isinstance(props, Mapping):
        yield from _property_key_rules(props, ["properties"])


def _property_key_rules(node: Any, where: list[str | int]) -> Iterator[str]:
    """Keys at every depth: Attentive's rule is about object keys, not only the top level."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                yield f"{json_path(where)}: keys must be strings"
                continue
            bad = sorted(set(key) & PROPERTY_KEY_FORBIDDEN)
            if bad:
                yield (
                    f"{json_path([*where, key])}: key contains forbidden character(s) {' '.join(bad)} "
                    "(not allowed: \" ' { } [ ] \\ | ,)"
                )
            if not key.strip():
                yield f"{json_path(where)}: keys must not be empty"
            yield from _property_key_rules(value, [*where, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _property_key_rules(value, [*where, i])


def _custom_attribute_rules(body: Mapping[str, Any]) -> Iterator[str]:
    props = body.get("properties")
    if not isinstance(props, Mapping):
        return
    for name, value in props.items():
        where = json_path(["properties", name])
        if not str(name).strip():
            yield "$.properties: attribute names must not be empty"
        if len(str(name)) > ATTRIBUTE_NAME_MAX:
            yield f"{json_path(['properties', str(name)[:40] + '…'])}: attribute name longer than {ATTRIBUTE_NAME_MAX} characters"
        if isinstance(value, Mapping | list | tuple):
            yield f"{where}: attribute values must be scalars (string, number, boolean), got {_json_type(value)}"
        elif value is None:
            yield f"{where}: null value (omit the attribute instead)"


def _subscribe_rules(body: Mapping[str, Any]) -> Iterator[str]:
    source = body.get("signUpSourceId")
    locale = body.get("locale")
    stype = body.get("subscriptionType")
    if isinstance(source, str) and not source.strip():
        yield "$.signUpSourceId: must not be empty"
    has_source = isinstance(source, str) and bool(source.strip())
    if not has_source and not (locale and stype):
        yield "$: needs signUpSourceId, or both locale and subscriptionType"
    if isinstance(locale, Mapping):
        lang, country = locale.get("language"), locale.get("country")
        if not (isinstance(lang, str) and re.fullmatch(r"[a-z]{2}", lang)):
            yield "$.locale.language: required, two lower-case letters (ISO 639-1, e.g. en)"
        if not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)):
            yield "$.locale.country: required, two upper-case letters (ISO 3166-1 alpha-2, e.g. US)"


def _unsubscribe_rules(body: Mapping[str, Any]) -> Iterator[str]:
    note = body.get("notification")
    if isinstance(note, Mapping):
        lang = note.get("language")
        if isinstance(lang, str) and lang not in NOTIFICATION_LANGUAGES:
            yield f"$.notification.language: must be one of {', '.join(NOTIFICATION_LANGUAGES)}"


def _identity_rules(body: Mapping[str, Any]) -> Iterator[str]:
    """``IdentifyRequestDto``: what the operation's description and field descriptions say."""
    for key in ("phone", *IDENTITY_LIMITED):
        value = body.get(key)
        if not isinstance(value, str):
            continue
        if _blank(value):
            yield f"{json_path([key])}: must not be an empty string (omit the field instead)"
        elif len(value) > IDENTIFIER_MAX and key != "phone":
            yield f"{json_path([key])}: longer than {IDENTIFIER_MAX} characters"
    phone, email = body.get("phone"), body.get("email")
    if isinstance(phone, str) and phone.strip() and not E164_RE.match(phone):
        yield "$.phone: not an E.164 phone number ('+', country code and number, digits only)"
    if isinstance(email, str) and email.strip() and not is_email(email):
        yield "$.email: not a valid email address"
    customs = body.get("customIdentifiers")
    n_custom = 0
    if isinstance(customs, list):
        if not customs:
            yield "$.customIdentifiers: must not be empty (omit the field instead)"
        for i, item in enumerate(customs):
            if not isinstance(item, Mapping):
                continue
            n_custom += 1
            for part in ("name", "value"):
                value = item.get(part)
                where = json_path(["customIdentifiers", i, part])
                if not isinstance(value, str) or _blank(value):
                    yield f"{where}: required, non-empty string"
                elif len(value) > IDENTIFIER_MAX:
                    yield f"{where}: longer than {IDENTIFIER_MAX} characters"
    present = [k for k in ("phone", "email", "shopifyId", "klaviyoId", "clientUserId") if _given(body.get(k))]
    if "clientUserId" not in present and not n_custom:
        yield "$: needs clientUserId or customIdentifiers (the identifiers to associate with the person)"
    elif len(present) + n_custom < 2:
        yield (
            "$: a client user or custom identifier needs to be accompanied by at least one other identifier "
            "(phone, email, shopifyId, klaviyoId, clientUserId or another custom identifier)"
        )


def _privacy_delete_rules(body: Mapping[str, Any]) -> Iterator[str]:
    """``PrivacyRequestAddDeleteEventDto``: subjectPhone or subjectEmail, else clientUserId."""
    for key in ("subjectPhone", "subjectEmail", "clientUserId", "requestMsg"):
        if _blank(body.get(key)):
            yield f"{json_path([key])}: must not be an empty string (omit the field instead)"
    phone, email = body.get("subjectPhone"), body.get("subjectEmail")
    if isinstance(phone, str) and phone.strip() and not E164_RE.match(phone):
        yield "$.subjectPhone: not an E.164 phone number ('+', country code and number, digits only)"
    if isinstance(email, str) and email.strip() and not is_email(email):
        yield "$.subjectEmail: not a valid email address"
    if not any(_given(body.get(k)) for k in ("subjectPhone", "subjectEmail", "clientUserId")):
        yield "$: needs subjectPhone or subjectEmail, else clientUserId (who is to be deleted)"


def _given(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


@functools.cache
def default_validator() -> SpecValidator:
    """One shared :class:`SpecValidator` over the vendored spec (strict top level)."""
    return SpecValidator()


def problems_text(problems: Sequence[str]) -> str:
    """Problems joined for an error message: ``"$.a: …; $.b: …"``."""
    return "; ".join(problems)
