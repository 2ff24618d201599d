"""The pydantic field types every Attentive request model shares: the model base, non-empty text, email,
phone (normalised to E.164), custom identifier.

One module for :mod:`connector.attentive.models` (events, attributes, subscriptions) and
:mod:`connector.attentive.identity` (identity, privacy deletion), which models imports to register its
bodies, so identity cannot import models. Not in :mod:`connector.attentive.formats`: that one serves the fast
body builders (:mod:`connector.attentive.bodies`) too, which stay free of pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

from connector.attentive.phones import normalize_phone
from connector.errors import InvalidPhoneError
from connector.formats import is_email

__all__ = ["CustomIdentifier", "Email", "Model", "NonEmpty", "Phone", "check_email"]


class Model(BaseModel):
    """Every request body: unknown keys refused, immutable, numbers taken as text, text stripped."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, str_strip_whitespace=True
    )


NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def check_email(value: str) -> str:
    """``value`` when it is an email address (:func:`connector.formats.is_email`), else a validation error."""
    if not is_email(value):
        raise PydanticCustomError("invalid_email", "not a valid email address")
    return value


Email = Annotated[str, StringConstraints(min_length=1), AfterValidator(check_email)]


def _normalize_phone(value: object, info: ValidationInfo) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_phone", "expected a string")
    region = (info.context or {}).get("default_region", "US")
    try:
        return normalize_phone(value.strip(), region)
    except InvalidPhoneError as exc:
        raise PydanticCustomError("invalid_phone", "{reason}", {"reason": str(exc)}) from None


Phone = Annotated[str, BeforeValidator(_normalize_phone)]
"""E.164; numbers without a country code take the validation context's ``default_region`` (``US``)."""


class CustomIdentifier(Model):
    """``CustomIdentifierDto``: a named identifier (``loyaltyId``, ``posCustomerId``)."""

    name: NonEmpty
    value: NonEmpty
