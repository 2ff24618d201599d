"""Timestamps as Attentive takes them, shared by the validating request models and the fast body builders."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from connector.formats import rfc3339

_OFFSET_RE = re.compile(r"(Z|z|[+-]\d{2}:?\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_timestamp(value: object) -> str:
    """RFC 3339 in UTC with milliseconds (``2021-03-30T14:38:29.000Z``) from a ``datetime`` with offset, epoch
    milliseconds (``int``) or an ISO 8601 string with an offset. Raises ``ValueError`` otherwise."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            dt = _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise ValueError("epoch milliseconds out of range") from None
    elif isinstance(value, str):
        text = value.strip()
        if "T" not in text and " " not in text:
            raise ValueError("expected a date-time with a time part, e.g. 2021-03-30T14:38:29Z")
        if not _OFFSET_RE.search(text):
            raise ValueError("timestamp has no UTC offset (add Z or +hh:mm)")
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError("not an ISO 8601 / RFC 3339 date-time") from None
    else:  # ValueError, not TypeError: pydantic turns only ValueError into a validation message
        raise ValueError(  # noqa: TRY004
            f"expected a datetime, epoch milliseconds (int) or an RFC 3339 string, got {type(value).__name__}"
        )
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("datetime has no UTC offset (naive); attach a timezone")
    return rfc3339(dt)
