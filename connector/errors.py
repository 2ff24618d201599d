"""The connector's one exception tree.

Behaviour is driven by three class attributes, never by message text:

* ``retriable`` — the same call may succeed later (429, 5xx, timeouts, registry down): retry with backoff.
* ``permanent`` — the record itself can never be delivered as is (bad Avro, a phone that can't be
  normalised, 400/404/413/422): dead-letter it with ``reason``.
* ``auth`` — the credentials are refused (401/403): not the record's fault; pause everything, never
  dead-letter.

``reason`` is a short, fixed, low-cardinality label used in metrics and DLQ headers. Messages never contain
the API key, and should not contain phone numbers or emails (use :func:`connector.observability.logs.mask`).
"""

from __future__ import annotations

from typing import ClassVar


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    retriable: ClassVar[bool] = False
    permanent: ClassVar[bool] = False
    auth: ClassVar[bool] = False
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(ConnectorError):
    """Configuration or rule table is invalid; start-up stops with this message (file, key, fix)."""

    reason = "config"


# --- the record's fault: dead-letter -------------------------------------------------------------------


class RecordError(ConnectorError):
    """The record can never be delivered as it is. The engine dead-letters it."""

    permanent = True
    reason = "record"


class DecodeError(RecordError):
    """The value is not decodable Avro for its topic.

    ``reason`` is one of ``not_avro``, ``bad_magic``, ``unknown_schema``, ``truncated``, ``incompatible``,
    ``empty``.
    """

    reason = "decode"


class RoutingError(RecordError):
    """A matching rule cannot build a valid Attentive request from the record."""

    reason = "routing"

    def __init__(self, message: str, *, rule: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.rule = rule


class InvalidPhoneError(RoutingError):
    """A phone number that cannot be normalised to E.164."""

    reason = "invalid_phone"


class UnroutableError(RecordError):
    """No rule matches and the config says unmatched records are dead-lettered."""

    reason = "no_rule"


# --- transient infrastructure ---------------------------------------------------------------------------


class TransientError(ConnectorError):
    """Something outside the record failed and may recover: retry with backoff."""

    retriable = True
    reason = "transient"


class RegistryUnavailableError(TransientError):
    """The Schema Registry could not be reached; the record is kept and decoding retried."""

    reason = "registry_unavailable"


class DeadLetterWriteError(TransientError):
    """The dead-letter topic could not be written. The engine stalls (never drops) and says so."""

    reason = "dlq_write_failed"


# --- Attentive API answers --------------------------------------------------------------------------------


class ApiError(ConnectorError):
    """A call to Attentive failed. Carries the endpoint name, HTTP status (None for network errors) and a
    truncated response body — never the request headers."""

    reason = "api_error"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        body: str = "",
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.endpoint = endpoint
        self.status = status
        self.body = body[:2048]


class ApiTransientError(ApiError):
    """429, 5xx, timeouts and connection errors. ``retry_after`` is the server's hint in seconds, if any."""

    retriable = True
    reason = "server_error"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        body: str = "",
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status, body=body, reason=reason)
        self.retry_after = retry_after


class RateLimitedError(ApiTransientError):
    """HTTP 429."""

    reason = "rate_limited"


class NetworkError(ApiTransientError):
    """Timeout or connection failure: no HTTP status."""

    reason = "network"


class ApiPermanentError(ApiError):
    """400, 404, 413, 422 (and other non-retriable 4xx): the request itself is wrong. Dead-letter."""

    permanent = True
    reason = "rejected"


class ApiAuthError(ApiError):
    """401 or 403: the key is refused. Pause consumption; never dead-letter for it."""

    auth = True
    reason = "unauthorized"
