"""Text formats the whole connector shares, each in one place: RFC 3339 timestamps, email checks, durations.

Imports nothing from the package, so every stage may use it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["EMAIL_RE", "is_email", "parse_duration", "rfc3339"]

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
"""A plausible email: one ``@``, no spaces, a dot in the domain (Attentive validates the rest)."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def rfc3339(value: datetime | float) -> str:
    """UTC RFC 3339 with milliseconds and ``Z`` (``2021-03-30T14:38:29.000Z``) from a datetime or Unix seconds.

    A naive datetime is taken as UTC — never as the host's local time.
    """
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(value, tz=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_email(text: str) -> bool:
    """Whether ``text`` looks like an email address (see :data:`EMAIL_RE`)."""
    return EMAIL_RE.match(text) is not None


def parse_duration(text: str | float) -> float:
    """``"12h"`` → 43200.0 seconds. Accepts ``ms s m h d``, combined (``1h30m``), or a bare number of seconds.

    Raises ``ValueError`` (which pydantic turns into a validation message) for anything else or a value <= 0.
    """
    if isinstance(text, bool):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation message
        raise ValueError("expected a duration such as 12h, 30m or 90s")  # noqa: TRY004
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        s = text.strip().lower()
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(s):
            if s[pos : m.start()].strip():
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos == 0 or s[pos:].strip():
            raise ValueError(f"{text!r} is not a duration; write e.g. 12h, 30m, 90s or 1h30m")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds
