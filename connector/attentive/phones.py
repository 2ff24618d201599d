"""Phone normalisation to E.164, the only format Attentive accepts."""

from __future__ import annotations

import functools

import phonenumbers

from connector.errors import InvalidPhoneError


@functools.lru_cache(maxsize=65536)
def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return ``raw`` as E.164 (``+13115552368``); numbers without ``+`` are read in ``default_region``.

    Raises :class:`InvalidPhoneError` (permanent: the record is dead-lettered, never retried) when the
    number cannot be parsed or is not a valid number. The message does not repeat the number.
    """
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneError(f"phone cannot be parsed ({exc.error_type!s})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneError("phone is not a valid number for its region")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
