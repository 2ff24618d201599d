"""Logging set-up: JSON lines (default) or a human text format, with PII masked and secrets redacted.

Every formatted line goes through :func:`scrub`: ``Bearer <token>`` and any value registered with
:func:`register_secret` become ``[REDACTED]``, phone numbers keep only their country digit and last four
(``+15551232368`` → ``+1******2368``), and e-mail addresses keep their first letter and domain
(``taylor@gmail.com`` → ``t***@gmail.com``). Masking happens in the formatter, on the message, on every
extra and on tracebacks, so a careless ``log.info("%s", payload)`` still cannot leak a phone number; the
call sites should not log PII in the first place, this is defence in depth.

Pass the record being worked on as ``extra={"record_id": rec.record_id}``; it becomes a top-level field
(and the ``X-Record-Id`` the connector sends to Attentive), so one record can be followed through the logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "RateLimitFilter",
    "RateLimitedLog",
    "RedactFilter",
    "TextFormatter",
    "configure_logging",
    "kafka_client_logger",
    "mask",
    "redact",
    "register_secret",
    "scrub",
]

LogFormat = Literal["json", "text"]

REDACTED = "[REDACTED]"

# ``Bearer <token>`` in any casing, e.g. an Authorization header echoed into an error message.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*")

_EMAIL = re.compile(
    r"\b([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)+)"
)

# Phones, in three shapes:
#  1. international: "+" then 8-15 digits, optionally grouped by spaces, dots, dashes or parentheses;
#  2. North-American formatted: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567;
#  3. bare 10/11 digits that are a valid NANP number (area and exchange code start with 2-9). The
#     restriction keeps Unix timestamps (1xxxxxxxxx) and most counters readable.
_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        \+\d(?:[\s.\-()]{0,2}\d){7,14}                                   # international
      | (?:1[\s.\-])?\(?[2-9]\d{2}\)?[\s.\-]\d{3}[\s.\-]\d{4}           # NANP, formatted
      | 1?[2-9]\d{2}[2-9]\d{6}                                          # NANP, bare digits
    )
    (?!\w)
    """,
    re.VERBOSE,
)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# Extras that are structured identifiers we generate, never PII; masking them would only garble them.
_UNMASKED_EXTRAS = frozenset({"record_id"})


def _mask_phone(m: re.Match[str]) -> str:
    raw = m.group(0)
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+"):
        return "+" + digits[0] + "*" * (len(digits) - 5) + digits[-4:]
    return "*" * (len(digits) - 4) + digits[-4:]


def _mask_email(m: re.Match[str]) -> str:
    return f"{m.group(1)}***@{m.group(2)}"


def mask(text: str) -> str:
    """Mask phone numbers and e-mail addresses in ``text`` (e-mails first: their local part may be digits)."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub(_mask_email, text))


def register_secret(value: str) -> None:
    """Redact this exact value (e.g. the API key) from every log line from now on."""
    # Very short values would redact ordinary words; a real key is long.
    if len(value) >= 8:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace ``Bearer <token>`` and registered secrets with ``[REDACTED]``."""
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    with _secrets_lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(text: str) -> str:
    """:func:`redact` then :func:`mask`: what every formatted log field goes through."""
    return mask(redact(text))


def _scrub_value(value: Any) -> Any:
    """Scrub strings inside any JSON-like value; other objects are turned into scrubbed strings."""
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(v) for v in value]
    return scrub(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    if record.exc_text:
        return record.exc_text
    return None


class RedactFilter(logging.Filter):
    """Rewrites the record's message with secrets redacted, for every handler it is attached to.

    The formatters scrub again; the filter exists so that handlers with a foreign formatter (a test's
    capture handler, a third-party sink) never see a bearer token either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format must not lose the line; the formatter reports it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``record_id``, extras, ``exc``.

    Every field is scrubbed (see :func:`scrub`); ``record_id`` is only redacted, never masked.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(_safe_message(record)),
        }
        for name, value in _extras(record).items():
            key = f"extra_{name}" if name in out else name  # never let an extra overwrite the envelope
            out[key] = (
                redact(value) if key in _UNMASKED_EXTRAS and isinstance(value, str) else _scrub_value(value)
            )
        exc = _exception_text(record)
        if exc:
            out["exc"] = scrub(exc)
        if record.stack_info:
            out["stack"] = scrub(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2025-01-02T03:04:05.678Z INFO  connector.delivery: message key=value ...`` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        parts = [f"{ts} {record.levelname:<7} {record.name}: {scrub(_safe_message(record))}"]
        extras = _extras(record)
        for key in sorted(extras):
            value = extras[key]
            shown = redact(str(value)) if key in _UNMASKED_EXTRAS else _scrub_value(value)
            if not isinstance(shown, str):
                shown = json.dumps(shown, ensure_ascii=False, default=str)
            parts.append(f"{key}={shown}")
        line = " ".join(parts)
        exc = _exception_text(record)
        if exc:
            line += "\n" + scrub(exc)
        if record.stack_info:
            line += "\n" + scrub(record.stack_info)
        return line


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:  # noqa: BLE001 - e.g. log.info("%d", "x"): keep the template, not drop the line
        return f"{record.msg!s} (log formatting failed: {type(exc).__name__})"


_HANDLER_MARK = "_attentive_connector_handler"

# Libraries whose INFO lines are per-request noise.
_QUIET_LOGGERS: tuple[str, ...] = ("aiohttp.access", "httpx", "httpx2", "httpcore")


def configure_logging(
    format: LogFormat = "json",
    level: str | int = "INFO",
    *,
    stream: IO[str] | None = None,
    quiet_loggers: Iterable[str] = _QUIET_LOGGERS,
) -> logging.Handler:
    """Install the connector's handler on the root logger and return it.

    Calling it again replaces the handler it installed before (and leaves other handlers alone), so
    tests and the CLI can reconfigure freely.

    :param format: ``json`` (one object per line, for log pipelines) or ``text`` (for terminals).
    :param level: root level, a name (``INFO``) or number.
    :param stream: where lines go; stderr by default.
    :raises ValueError: for an unknown format or level name.
    """
    if format not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', not {format!r}")
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")  # noqa: TRY004
        level = resolved
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


# -- repeating conditions ------------------------------------------------------------------------------------


class _Throttle:
    """Per key: admit the first event, then at most one per ``interval_s``, counting the ones held back."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, key: str) -> tuple[bool, int]:
        """``(emit, held_back)``: whether to log this one, and how many were held back since the last."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._held.pop(key, 0)

    def held_back(self, key: str) -> int:
        with self._lock:
            return self._held.get(key, 0)


def _held_note(held: int, interval_s: float) -> str:
    return f" ({held} more like this in the last {interval_s:.0f}s)" if held else ""


class RateLimitedLog:
    """Logs a condition that repeats many times a second (a broker that refuses connections) at most once per
    ``interval_s`` per key, saying how many lines it held back: ``log.warning(key, "...", args)``.

    Without it an unreachable broker writes ~40 lines a second (librdkafka reports every reconnect attempt),
    which buries everything else and fills log storage; with it the operator sees the condition once, then a
    reminder with a count every interval. Thread-safe (librdkafka calls back from its own threads).

    :param logger: where the lines go.
    :param interval_s: at most one line per key per interval.
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._throttle = _Throttle(interval_s, clock)

    @property
    def interval_s(self) -> float:
        return self._throttle.interval_s

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval; True when it was written."""
        emit, held = self._throttle.admit(key)
        if emit:
            self._logger.log(level, f"{msg}{_held_note(held, self.interval_s)}", *args)
        return emit

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def held_back(self, key: str) -> int:
        """Lines held back for ``key`` since the last one written."""
        return self._throttle.held_back(key)


class RateLimitFilter(logging.Filter):
    """The same limit as a :class:`logging.Filter`, for a logger a library writes to directly (librdkafka).

    The key is the record's first ``%``-argument when there is one (librdkafka logs ``"%s [%s] %s"`` with its
    facility, e.g. ``FAIL``, first), else its format string.
    """

    def __init__(self, *, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._throttle = _Throttle(interval_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno <= logging.WARNING and record.getMessage().endswith(": retrying"):
            return False  # librdkafka retries by itself (e.g. a just-started broker's coordinator): not news
        key = str(args[0]) if isinstance(args, tuple) and args else str(record.msg)
        emit, held = self._throttle.admit(f"{record.levelno}:{key}")
        if emit and held:
            record.msg = f"{record.getMessage()}{_held_note(held, self._throttle.interval_s)}"
            record.args = None
        return emit


_KAFKA_LOGGER = "connector.kafka.librdkafka"


def kafka_client_logger(*, interval_s: float = 30.0) -> logging.Logger:
    """The logger to give librdkafka (``"logger"`` in a client's config) instead of its own stderr lines.

    Its lines then go through the connector's handler (JSON, redaction) and a :class:`RateLimitFilter`, so a
    dead broker's ``FAIL … Connection refused`` appears once per interval instead of 20 times a second.
    """
    logger = logging.getLogger(_KAFKA_LOGGER)
    if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
        logger.addFilter(RateLimitFilter(interval_s=interval_s))
    return logger
