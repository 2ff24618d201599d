"""identity and privacy.delete: request building, spec validation, static rule checks, data-dependent failures.

Every body the rules build is checked against the vendored spec (``SpecValidator``); what a rule table gets
wrong statically is reported by ``validate``; what depends on the record is a ``RoutingError`` naming the
reason (the engine dead-letters it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.attentive.endpoints import Endpoint
from connector.attentive.identity import flat_user_fields
from connector.attentive.jsonio import dumps, loads
from connector.attentive.models import build_body
from connector.attentive.spec import default_validator
from connector.avro.encoder import Encoder
from connector.config import AttentiveSettings, Encoding
from connector.errors import InvalidPhoneError, RoutingError
from connector.rules.router import Router, load_topic_schemas
from connector.rules.table import check_rule_table
from connector.types import SourceRecord
from tests.unit.avro_rules_support import (
    NOW,
    SHIPPED_RULES,
    config_for,
    decoded,
    order,
    router_for,
    schema,
    signup,
)

V = default_validator()
PHONE = "+14155550123"


def build(endpoint: Endpoint, data: dict[str, Any]) -> dict[str, Any]:
    body = build_body(endpoint, data, rule="r")
    assert V.validate(endpoint, loads(dumps(body))) == [], body  # the spec is the source of truth
    return body


def fails(endpoint: Endpoint, data: dict[str, Any], fragment: str) -> RoutingError:
    with pytest.raises(RoutingError) as info:
        build_body(endpoint, data, rule="r")
    assert fragment in str(info.value), str(info.value)
    assert info.value.rule == "r"
    return info.value


# --- endpoints ------------------------------------------------------------------------------------------


def test_endpoints_paths_schemas_and_rate_limits() -> None:
    assert Endpoint("identity").path == "/v1/identity-resolution/user-identifiers"
    assert Endpoint("privacy.delete").path == "/v1/privacy/delete-request"
    assert Endpoint.IDENTITY.schema_name == "IdentifyRequestDto"
    assert Endpoint.PRIVACY_DELETE.schema_name == "PrivacyRequestAddDeleteEventDto"
    assert Endpoint.IDENTITY.default_rate_limit == 10.0  # published
    assert Endpoint.PRIVACY_DELETE.default_rate_limit == 5.0  # conservative default (none published)
    settings = AttentiveSettings.model_validate({"rate_limits": {"identity": 4, "privacy.delete": 1}})
    assert settings.rate_limit(Endpoint.IDENTITY) == 4 and settings.rate_limit(Endpoint.PRIVACY_DELETE) == 1


# --- identity bodies ------------------------------------------------------------------------------------


def test_identity_body_normalises_and_validates() -> None:
    body = build(
        Endpoint.IDENTITY,
        {
            "phone": "(415) 555-0123",
            "email": " Ava@Example.com ",
            "shopifyId": 7000000039,
            "clientUserId": 12345,
            "customIdentifiers": [{"name": "loyaltyId", "value": 99}],
            "klaviyoId": "",
        },
    )
    assert body == {
        "phone": PHONE,
        "email": "Ava@Example.com",
        "shopifyId": "7000000039",
        "clientUserId": "12345",
        "customIdentifiers": [{"name": "loyaltyId", "value": "99"}],
    }


def test_identity_accepts_a_custom_identifier_with_a_client_user_id() -> None:
    # "accompanied by at least one other identifier of the following types: ..., client user identifier, or
    # custom identifier" (the spec's own wording)
    build(Endpoint.IDENTITY, {"clientUserId": "c1", "customIdentifiers": [{"name": "pos", "value": "9"}]})
    build(
        Endpoint.IDENTITY,
        {"customIdentifiers": [{"name": "pos", "value": "9"}, {"name": "loyalty", "value": "8"}]},
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"clientUserId": "c1"}, "identity: $: a client user or custom identifier needs to be accompanied"),
        ({"clientUserId": "c1", "email": None, "phone": " "}, "needs to be accompanied"),
        ({"customIdentifiers": [{"name": "pos", "value": "9"}]}, "needs to be accompanied"),
        ({"phone": PHONE, "email": "a@b.co"}, "needs clientUserId or customIdentifiers"),
        ({}, "needs clientUserId or customIdentifiers"),
        ({"phone": PHONE, "clientUserId": "c" * 101}, "$.clientUserId: longer than 100 characters"),
        ({"email": "a" * 95 + "@b.com", "clientUserId": "c"}, "$.email: longer than 100"),
        ({"shopifyId": "9" * 101, "clientUserId": "c"}, "$.shopifyId: longer than 100"),
        ({"klaviyoId": "k" * 101, "clientUserId": "c"}, "$.klaviyoId: longer than 100"),
        (
            {"phone": PHONE, "customIdentifiers": [{"name": "n" * 101, "value": "v"}]},
            "$.customIdentifiers[0].name: longer than 100",
        ),
        (
            {"phone": PHONE, "customIdentifiers": [{"name": "pos", "value": "v" * 101}]},
            "$.customIdentifiers[0].value: longer than 100",
        ),
        ({"email": "not-an-email", "clientUserId": "c"}, "$.email: not a valid email address"),
        ({"email": "a@b.co", "clientUserId": "c", "user": {"phone": PHONE}}, "$.user: unexpected key"),
    ],
)
def test_identity_invalid_bodies_name_the_problem_never_the_value(
    data: dict[str, Any], fragment: str
) -> None:
    err = fails(Endpoint.IDENTITY, data, fragment)
    for value in ("c" * 101, "v" * 101, "not-an-email", PHONE):
        assert value not in str(err)


def test_identity_limits_are_inclusive() -> None:
    exactly = "x" * 100
    build(Endpoint.IDENTITY, {"phone": PHONE, "clientUserId": exactly, "klaviyoId": exactly})


def test_identity_bad_phone_is_an_invalid_phone_error() -> None:
    with pytest.raises(InvalidPhoneError, match=r"identity: \$\.phone"):
        build_body(Endpoint.IDENTITY, {"phone": "12345", "clientUserId": "c"})


# --- privacy bodies -------------------------------------------------------------------------------------


def test_privacy_delete_bodies() -> None:
    assert build(
        Endpoint.PRIVACY_DELETE, {"subjectPhone": "415 555 0123", "requestMsg": " CCPA request 42 "}
    ) == {"subjectPhone": PHONE, "requestMsg": "CCPA request 42"}
    assert build(Endpoint.PRIVACY_DELETE, {"subjectEmail": "a@b.co"}) == {"subjectEmail": "a@b.co"}
    # else the client user id
    assert build(Endpoint.PRIVACY_DELETE, {"clientUserId": 42, "subjectEmail": ""}) == {"clientUserId": "42"}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "privacy.delete: $: needs subjectPhone or subjectEmail, else clientUserId"),
        (
            {"requestMsg": "x", "subjectPhone": None, "subjectEmail": " "},
            "needs subjectPhone or subjectEmail",
        ),
        ({"subjectEmail": "nope", "clientUserId": "c"}, "$.subjectEmail: not a valid email address"),
        ({"subjectEmail": "a@b.co", "subscriberEmail": "a@b.co"}, "$.subscriberEmail: unexpected key"),
    ],
)
def test_privacy_delete_invalid_bodies(data: dict[str, Any], fragment: str) -> None:
    fails(Endpoint.PRIVACY_DELETE, data, fragment)


def test_privacy_bad_phone_is_an_invalid_phone_error() -> None:
    with pytest.raises(InvalidPhoneError, match=r"privacy.delete: \$\.subjectPhone"):
        build_body(Endpoint.PRIVACY_DELETE, {"subjectPhone": "call me"})


_ident = st.one_of(st.none(), st.just(""), st.text("abc019-", min_size=1, max_size=12), st.just("z" * 101))
_IDENTITY_DATA = st.fixed_dictionaries(
    {},
    optional={
        "phone": st.sampled_from(["+14155550123", "4155550123", "12", "", None]),
        "email": st.sampled_from(["a@b.co", "bad", "", None, "e" * 98 + "@b.co"]),
        "shopifyId": st.one_of(_ident, st.integers(0, 10**12)),
        "klaviyoId": _ident,
        "clientUserId": st.one_of(_ident, st.integers(0, 10**6)),
        "customIdentifiers": st.lists(st.fixed_dictionaries({"name": _ident, "value": _ident}), max_size=2),
    },
)
_PRIVACY_DATA = st.fixed_dictionaries(
    {},
    optional={
        "subjectPhone": st.sampled_from(["+14155550123", "4155550123", "12", "", None]),
        "subjectEmail": st.sampled_from(["a@b.co", "bad", "", None]),
        "clientUserId": _ident,
        "requestMsg": _ident,
    },
)


@pytest.mark.parametrize(
    ("endpoint", "strategy"),
    [(Endpoint.IDENTITY, _IDENTITY_DATA), (Endpoint.PRIVACY_DELETE, _PRIVACY_DATA)],
    ids=str,
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_built_body_is_spec_valid_and_every_refusal_is_a_spec_problem(
    endpoint: Endpoint, strategy: Any, data: st.DataObject
) -> None:
    raw = data.draw(strategy)
    try:
        body = build_body(endpoint, raw)
    except RoutingError as exc:
        assert str(exc).startswith(f"{endpoint}: $")
        return
    assert V.validate(endpoint, loads(dumps(body))) == []


def test_flat_user_fields_maps_the_event_user_per_call() -> None:
    user = {"phone": PHONE, "email": "a@b.co", "externalIdentifiers": {"clientUserId": "c", "shopifyId": "s"}}
    assert flat_user_fields(Endpoint.IDENTITY, user) == {
        "phone": PHONE,
        "email": "a@b.co",
        "clientUserId": "c",
        "shopifyId": "s",
    }
    # privacy has no place for a shopify id: it keeps its name so validation reports it
    assert flat_user_fields(Endpoint.PRIVACY_DELETE, user) == {
        "subjectPhone": PHONE,
        "subjectEmail": "a@b.co",
        "clientUserId": "c",
        "shopifyId": "s",
    }


# --- static checks (validate) ---------------------------------------------------------------------------


def problems(tmp_path: Path, rules: str) -> list[str]:
    config = config_for(tmp_path, rules)
    _, found = check_rule_table(config.resolve(config.rules_file), load_topic_schemas(config))
    return [line.split(": ", 1)[1] for line in found]


def rule(api: str, user: str, extra: str = "", topic: str = "signups") -> str:
    return f"rules:\n  - name: r\n    topics: [{topic}]\n    api: {api}\n    user: {user}\n{extra}"


@pytest.mark.parametrize(
    ("api", "user", "extra", "expected"),
    [
        (
            "identity",
            "{client_user_id: customer.id}",
            "",
            "rule 'r': user: identity: a client user or custom identifier needs to be accompanied by at least "
            "one other identifier; map user.phone, user.email, user.shopify_id or user.klaviyo_id (or a second "
            "custom identifier)",
        ),
        (
            "identity",
            "{phone: customer.phone, email: customer.email}",
            "",
            "rule 'r': user: identity needs user.client_user_id or user.custom_identifiers: the identifiers to "
            "associate with the person",
        ),
        (
            "identity",
            "{phone: customer.phone, client_user_id: {literal: " + "c" * 101 + "}}",
            "",
            "rule 'r': user.client_user_id: always longer than 100 characters (Attentive's limit for identifiers)",
        ),
        (
            "identity",
            '{phone: customer.phone, client_user_id: {template: "' + "p" * 101 + '-{{ customer.id }}"}}',
            "",
            "rule 'r': user.client_user_id: always longer than 100 characters (Attentive's limit for identifiers)",
        ),
        (
            "identity",
            "{phone: customer.phone, custom_identifiers: {" + "n" * 101 + ": customer.id}}",
            "",
            "rule 'r': user.custom_identifiers." + "n" * 40 + "…: custom identifier name longer than 100 "
            "characters (Attentive's limit)",
        ),
        (
            "identity",
            "{phone: customer.phone, client_user_id: customer.id}",
            "    max_age: 12h\n",
            "rule 'r': max_age: identity takes no max_age: a link stays true however old the record is, and the "
            "events relying on it would go unattributed",
        ),
        (
            "identity",
            "{phone: customer.phone, client_user_id: customer.id}",
            "    fields: {clientUserId: customer.id}\n",
            "rule 'r': fields.clientUserId: identity has no field 'clientUserId' (fields: none: the identifiers "
            "come from user:)",
        ),
        (
            "identity",
            "{phone: customer.phone, client_user_id: consent}",
            "",
            "rule 'r': user.client_user_id: 'consent' is record Consent in signups.avsc; Attentive expects an "
            "identifier (text or integer)",
        ),
        (
            "privacy.delete",
            "{phone: customer.phone}",
            "    max_age: 30d\n",
            "rule 'r': max_age: privacy.delete takes no max_age: a deletion request must never be skipped as "
            "stale",
        ),
        (
            "privacy.delete",
            "{phone: customer.phone, shopify_id: customer.shopify_id}",
            "",
            "rule 'r': user.shopify_id: shopify_id is only accepted by subscribe and identity",
        ),
        (
            "privacy.delete",
            "{email: customer.email, custom_identifiers: {loyaltyId: customer.id}}",
            "",
            "rule 'r': user.custom_identifiers: privacy.delete identifies the person by phone or email, else "
            "client_user_id",
        ),
        (
            "privacy.delete",
            "{}",
            "",
            "rule 'r': user: map at least one of user.phone, user.email, user.client_user_id, "
            "user.custom_identifiers",
        ),
        (
            "privacy.delete",
            "{email: customer.email}",
            "    fields: {requestMsg: consent}\n",
            "rule 'r': fields.requestMsg: 'consent' is record Consent in signups.avsc; Attentive expects an "
            "audit message (text, no personal data)",
        ),
        (
            "privacy.delete",
            "{email: customer.email}",
            "    external_event_id: event_id\n",
            "rule 'r': only custom_event takes an external_event_id, not privacy.delete",
        ),
    ],
)
def test_validate_catches_static_problems(
    tmp_path: Path, api: str, user: str, extra: str, expected: str
) -> None:
    assert problems(tmp_path, rule(api, user, extra)) == [expected]


def test_validate_accepts_good_identity_and_privacy_rules(tmp_path: Path) -> None:
    good = (
        rule(
            "identity",
            "{email: customer.email, klaviyo_id: {literal: " + "k" * 100 + "}, "
            "custom_identifiers: {signupId: event_id}}",
        )
        + "  - name: p\n    topics: [privacy]\n    api: privacy.delete\n    user: {client_user_id: customer.id}\n"
        "    fields: {requestMsg: {template: 'request {{ request_id }}'}}\n"
    )
    assert problems(tmp_path, good) == []


# --- routing: what depends on the record is dead-lettered with the reason --------------------------------


def _route(router: Router, topic: str, record: dict[str, Any], offset: int = 7) -> Any:
    value = Encoder(schema(topic), Encoding.RAW).encode(decoded(topic, record))
    return router.route(SourceRecord(topic, 0, offset, b"k", value))


LINK_ALWAYS = rule("identity", "{phone: customer.phone, client_user_id: customer.id}")


def test_a_record_with_only_the_client_id_is_dead_lettered_with_the_reason(tmp_path: Path) -> None:
    router = router_for(tmp_path, LINK_ALWAYS)
    result = _route(router, "signups", signup(customer={"id": "cust-9", "phone": None}))
    assert not result.calls and isinstance(result.error, RoutingError)
    assert result.error.rule == "r"
    assert "identity: $: a client user or custom identifier needs to be accompanied" in str(result.error)
    assert "cust-9" not in str(result.error)


def test_an_over_long_customer_id_is_dead_lettered(tmp_path: Path) -> None:
    router = router_for(tmp_path, LINK_ALWAYS)
    result = _route(router, "signups", signup(customer={"id": "c" * 101, "phone": "2125550199"}))
    assert isinstance(result.error, RoutingError)
    assert "identity: $.clientUserId: longer than 100 characters" in str(result.error)


def test_a_deletion_request_without_any_identifier_is_dead_lettered(tmp_path: Path) -> None:
    router = router_for(tmp_path, SHIPPED_RULES)
    request = {
        "request_id": "DSR-1",
        "customer": {"id": None, "phone": None, "email": None},
        "occurred_at": "2025-03-14T14:00:00Z",
    }
    result = _route(router, "privacy", request)
    assert isinstance(result.error, RoutingError) and result.error.reason == "no_identifier"
    assert result.error.rule == "privacy-delete"
    assert "no user identifier: the mapped phone, email, client_user_id are all empty" in str(result.error)
    bad_phone = _route(router, "privacy", {**request, "customer": {"phone": "call me", "id": "c1"}})
    assert isinstance(bad_phone.error, InvalidPhoneError) and "$.subjectPhone" in str(bad_phone.error)


def test_shipped_privacy_rule_builds_spec_valid_requests(tmp_path: Path) -> None:
    topics: dict[str, dict[str, Any]] = {t: {} for t in ("orders", "loyalty", "signups")}
    router = router_for(tmp_path, SHIPPED_RULES, topics={**topics, "privacy": {"key_field": "customer.id"}})
    result = _route(
        router,
        "privacy",
        {
            "request_id": "DSR-7",
            "customer": {"id": "cust-1", "email": "ava@example.com"},
            "regulation": "GDPR",
            "occurred_at": "2025-03-14T14:00:00Z",
        },
    )
    [call] = result.calls
    assert call.endpoint is Endpoint.PRIVACY_DELETE and call.record_id == "privacy/0/7"
    assert call.body == {
        "subjectEmail": "ava@example.com",
        "clientUserId": "cust-1",
        "requestMsg": "GDPR deletion request DSR-7 via unspecified",
    }
    assert V.validate(Endpoint.PRIVACY_DELETE, loads(dumps(call.body))) == []
    assert result.ordering_key == "cust-1"


def test_link_on_signup_then_events_by_customer_id(tmp_path: Path) -> None:
    """The shipped pattern: the signup's identity call goes first in its fan-out; an order carrying only
    the customer id builds an event whose only identifier is that id."""
    router = router_for(tmp_path, SHIPPED_RULES, clock=lambda: NOW.timestamp())
    link = _route(router, "signups", signup(customer={"id": "cust-3", "phone": "212-555-0199"}))
    assert [c.endpoint for c in link.calls] == [
        Endpoint.IDENTITY,
        Endpoint.SUBSCRIBE,
        Endpoint.CUSTOM_ATTRIBUTES,
    ]
    assert link.calls[0].body == {"phone": "+12125550199", "clientUserId": "cust-3"}
    later = _route(router, "orders", order(customer={"id": "cust-3"}))
    [purchase] = later.calls
    assert purchase.body["user"] == {"externalIdentifiers": {"clientUserId": "cust-3"}}
    assert V.validate(Endpoint.PURCHASE, loads(dumps(purchase.body))) == []
    # a signup that carries nothing to link to is not linked (and not dead-lettered for it)
    alone = _route(router, "signups", signup(customer={"id": "cust-4"}, channel="EMAIL"))
    assert Endpoint.IDENTITY not in [c.endpoint for c in alone.calls]
