"""Request bodies of the Identity API and of privacy deletion requests (``identity``, ``privacy.delete``).

* ``POST /v1/identity-resolution/user-identifiers`` (``IdentifyRequestDto``, scope ``identity:write``, 10
  requests/s, answers 202 "Request processed"): associates a client user id and/or custom identifiers with a
  person's other identifiers. "A client user or custom identifier needs to be accompanied by at least one other
  identifier of the following types: phone, email, shopify id, klaviyo id, client user identifier, or custom
  identifier"; email, shopifyId, klaviyoId, clientUserId and customIdentifiers have "a 100 character limit".
  Once linked, events that carry only ``externalIdentifiers.clientUserId`` reach that person.
* ``POST /v1/privacy/delete-request`` (``PrivacyRequestAddDeleteEventDto``, scope ``privacy_requests:write``,
  answers 200 ``{"id": ...}``): ``subjectPhone`` or ``subjectEmail`` ("only required if the other is empty"),
  else ``clientUserId``, and an optional ``requestMsg`` "for an audit trail". Attentive deletes the subscriber
  within thirty days.

Both take the person's identifiers as top-level fields, not in a ``user`` object: :func:`flat_user_fields` turns
the event-style ``user`` a rule builds into them. The models here are registered in
:data:`connector.attentive.models.MODELS`, so :func:`~connector.attentive.models.build_body` validates them like
every other body (same cleaning, same ``$.path: problem`` messages that never echo a value). The same rules are
checked against the vendored spec by :class:`connector.attentive.spec.SpecValidator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from connector.attentive.endpoints import Endpoint
from connector.attentive.fields import CustomIdentifier, Email, Model, NonEmpty, Phone, check_email
from connector.attentive.spec import IDENTIFIER_MAX

__all__ = [
    "FLAT_USER_APIS",
    "IDENTIFIER_MAX",
    "MODELS",
    "IdentifyRequest",
    "PrivacyDeleteRequest",
    "flat_user_fields",
]


FLAT_USER_APIS = frozenset({Endpoint.IDENTITY, Endpoint.PRIVACY_DELETE})
"""The calls whose person identifiers are top-level fields rather than a ``user`` object."""


def _limited(value: str) -> str:
    if len(value) > IDENTIFIER_MAX:
        raise PydanticCustomError(
            "too_long", "longer than {limit} characters (Attentive's limit)", {"limit": IDENTIFIER_MAX}
        )
    return value


Limited = Annotated[str, StringConstraints(min_length=1), AfterValidator(_limited)]
LimitedEmail = Annotated[
    str, StringConstraints(min_length=1), AfterValidator(check_email), AfterValidator(_limited)
]


class LimitedCustomIdentifier(CustomIdentifier):
    """``CustomIdentifierDto1``: a named identifier (``loyaltyId``, ``posCustomerId``), each part at most
    :data:`IDENTIFIER_MAX` characters."""

    name: Limited
    value: Limited


class IdentifyRequest(Model):
    """``IdentifyRequestDto``: the identifiers to associate, and at least one other one to associate them with."""

    phone: Phone | None = None
    email: LimitedEmail | None = None
    shopifyId: Limited | None = None
    klaviyoId: Limited | None = None
    clientUserId: Limited | None = None
    customIdentifiers: list[LimitedCustomIdentifier] | None = None

    @model_validator(mode="after")
    def _accompanied(self) -> Self:
        customs = len(self.customIdentifiers or ())
        if not self.clientUserId and not customs:
            raise PydanticCustomError(
                "no_identifier",
                "needs clientUserId or customIdentifiers (the identifiers to associate with the person)",
            )
        others = [self.phone, self.email, self.shopifyId, self.klaviyoId, self.clientUserId]
        if sum(1 for v in others if v) + customs < 2:
            raise PydanticCustomError(
                "no_identifier",
                "a client user or custom identifier needs to be accompanied by at least one other identifier "
                "(phone, email, shopifyId, klaviyoId, clientUserId or another custom identifier)",
            )
        return self


class PrivacyDeleteRequest(Model):
    """``PrivacyRequestAddDeleteEventDto``: whom to delete, and an optional message for the audit trail."""

    subjectPhone: Phone | None = None
    subjectEmail: Email | None = None
    clientUserId: NonEmpty | None = None
    requestMsg: NonEmpty | None = None

    @model_validator(mode="after")
    def _subject(self) -> Self:
        if not (self.subjectPhone or self.subjectEmail or self.clientUserId):
            raise PydanticCustomError(
                "no_identifier",
                "needs subjectPhone or subjectEmail, else clientUserId (who is to be deleted)",
            )
        return self


MODELS: dict[Endpoint, type[BaseModel]] = {
    Endpoint.IDENTITY: IdentifyRequest,
    Endpoint.PRIVACY_DELETE: PrivacyDeleteRequest,
}

# Event-style user (what a rule builds) -> top-level field, per call.
_IDENTITY_KEYS = {"phone": "phone", "email": "email"}
_IDENTITY_EXTERNAL = {
    "clientUserId": "clientUserId",
    "shopifyId": "shopifyId",
    "klaviyoId": "klaviyoId",
    "customIdentifiers": "customIdentifiers",
}
_PRIVACY_KEYS = {"phone": "subjectPhone", "email": "subjectEmail"}
_PRIVACY_EXTERNAL = {"clientUserId": "clientUserId"}


def flat_user_fields(api: Endpoint, user: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields ``api`` wants for an event-style ``user`` (``phone``, ``email``,
    ``externalIdentifiers{clientUserId, shopifyId, klaviyoId, customIdentifiers}``).

    Keys the call has no place for keep their names, so validation reports them instead of dropping them.
    """
    direct, external = (
        (_IDENTITY_KEYS, _IDENTITY_EXTERNAL)
        if api is Endpoint.IDENTITY
        else (_PRIVACY_KEYS, _PRIVACY_EXTERNAL)
    )
    out: dict[str, Any] = {}
    for key, value in user.items():
        if key == "externalIdentifiers" and isinstance(value, Mapping):
            for ext_key, ext_value in value.items():
                out[external.get(str(ext_key), str(ext_key))] = ext_value
        else:
            out[direct.get(str(key), str(key))] = value
    return out
