"""The connector's one exception tree.

Every error the connector raises on purpose is a :class:`ConnectorError`::

    ConnectorError
    ├── ConfigError                    start-up stops with one line (file, key, fix)
    │   ├── ExpressionError            a rule expression that does not compile
    │   └── NodeError                  a rule value mapping that does not compile
    ├── RecordError          permanent the record can never be delivered as it is: dead-letter it
    │   ├── DecodeError                not decodable Avro for its topic
    │   ├── RoutingError               a matching rule cannot build a valid request
    │   │   └── InvalidPhoneError      a phone that cannot be normalised to E.164
    │   ├── UnroutableError            no rule matches (and unmatched records are dead-lettered)
    │   └── EncodeError                a record that does not fit its schema (producing samples)
    ├── TransientError       retriable something outside the record failed and may recover
    │   ├── RegistryUnavailableError   the Schema Registry cannot be reached
    │   ├── KafkaUnreachableError      no broker answered (connector.source.probe)
    │   ├── DeadLetterWriteError       the dead-letter topic could not be written (retried forever)
    │   └── ApiTransientError          5xx, 408, timeouts, connection errors (also an ApiError)
    │       ├── RateLimitedError  flow_control   HTTP 429
    │       └── NetworkError               timeout or connection failure: no HTTP status
    └── ApiError                       a call to Attentive failed (endpoint, status, body)
        ├── ApiTransientError          (above)
        ├── ApiPermanentError    permanent   400/404/413/422 and other 4xx: dead-letter
        └── ApiAuthError         auth        401/403: pause everything, never dead-letter

Behaviour is driven by class flags, never by class checks or message text; callers write
``except ConnectorError as exc:`` and branch on them:

* ``retriable`` — the same call may succeed later (429, 5xx, timeouts, registry down): retry with backoff.
* ``permanent`` — the record itself can never be delivered as is (bad Avro, a phone that can't be
  normalised, 400/404/413/422): dead-letter it with ``reason``.
* ``auth`` — the credentials are refused (401/403): not the record's fault; pause everything, never
  dead-letter.
* ``flow_control`` — the server asks us to slow down (429): retry after ``retry_after``; never a strike
  toward dead-lettering and never a circuit failure.

``retry_after`` is the server's hint in seconds (``None`` when it gave none). ``reason`` is a
:class:`Reason`: a short, fixed, low-cardinality label shared by metrics, logs and DLQ headers. Anything
that is *not* a ``ConnectorError`` is a bug: callers catch it separately, log it at ERROR with its traceback
and dead-letter the record with :attr:`Reason.INTERNAL_ERROR` (README, "Delivery guarantees").

Messages never contain the API key, and should not contain phone numbers or emails (use
:func:`connector.observability.logs.mask`).
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiPermanentError",
    "ApiTransientError",
    "ConfigError",
    "ConnectorError",
    "DeadLetterWriteError",
    "DecodeError",
    "EncodeError",
    "ExpressionError",
    "InvalidPhoneError",
    "KafkaUnreachableError",
    "NetworkError",
    "NodeError",
    "RateLimitedError",
    "Reason",
    "RecordError",
    "RegistryUnavailableError",
    "RoutingError",
    "TransientError",
    "UnroutableError",
]


class Reason(enum.StrEnum):
    """Why something failed: the ``reason`` label of metrics, the ``dlq.error.reason`` header, log fields.

    A closed set, so dashboards and alerts can name every value.
    """

    # generic, one per branch of the tree
    ERROR = "error"
    CONFIG = "config"
    RECORD = "record"
    TRANSIENT = "transient"
    API_ERROR = "api_error"
    INTERNAL_ERROR = "internal_error"
    """Not a ConnectorError: a bug. Logged at ERROR with its traceback."""
    # decoding (DecodeError)
    DECODE = "decode"
    NOT_AVRO = "not_avro"
    BAD_MAGIC = "bad_magic"
    UNKNOWN_SCHEMA = "unknown_schema"
    TRUNCATED = "truncated"
    INCOMPATIBLE = "incompatible"
    EMPTY = "empty"
    ENCODE = "encode"
    # routing (RoutingError, UnroutableError)
    ROUTING = "routing"
    INVALID_PHONE = "invalid_phone"
    NO_RULE = "no_rule"
    NO_IDENTIFIER = "no_identifier"
    ITEMS = "items"
    EXPRESSION = "expression"
    # infrastructure
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    KAFKA_UNREACHABLE = "kafka_unreachable"
    DLQ_WRITE_FAILED = "dlq_write_failed"
    # Attentive's answers
    SERVER_ERROR = "server_error"
    UNEXPECTED_STATUS = "unexpected_status"
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose; its flags say what to do with it."""

    retriable: ClassVar[bool] = False
    permanent: ClassVar[bool] = False
    auth: ClassVar[bool] = False
    flow_control: ClassVar[bool] = False
    retry_after: float | None = None
    reason: Reason = Reason.ERROR
    rule: str | None = None
    """The rule being applied when it failed, when known (set by :class:`RoutingError`)."""

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(ConnectorError):
    """Configuration or rule table is invalid; start-up stops with this message (file, key, fix)."""

    reason = Reason.CONFIG


class ExpressionError(ConfigError, ValueError):
    """An expression that cannot be compiled (syntax); the message says where. Also a ``ValueError``."""


class NodeError(ConfigError, ValueError):
    """A value mapping that cannot be compiled; ``where`` is its path in the rule, ``detail`` the problem."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


# --- the record's fault: dead-letter -------------------------------------------------------------------


class RecordError(ConnectorError):
    """The record can never be delivered as it is. The engine dead-letters it."""

    permanent = True
    reason = Reason.RECORD


class DecodeError(RecordError):
    """The value is not decodable Avro for its topic.

    ``reason`` is one of ``not_avro``, ``bad_magic``, ``unknown_schema``, ``truncated``, ``incompatible``,
    ``empty``.
    """

    reason = Reason.DECODE


class RoutingError(RecordError):
    """A matching rule cannot build a valid Attentive request from the record."""

    reason = Reason.ROUTING

    def __init__(self, message: str, *, rule: str | None = None, reason: Reason | None = None) -> None:
        super().__init__(message, reason=reason)
        self.rule = rule


class InvalidPhoneError(RoutingError):
    """A phone number that cannot be normalised to E.164."""

    reason = Reason.INVALID_PHONE


class UnroutableError(RecordError):
    """No rule matches and the config says unmatched records are dead-lettered."""

    reason = Reason.NO_RULE


class EncodeError(RecordError, ValueError):
    """The record does not fit the schema, or the registry refused the schema. Also a ``ValueError``."""

    reason = Reason.ENCODE


# --- transient infrastructure ---------------------------------------------------------------------------


class TransientError(ConnectorError):
    """Something outside the record failed and may recover: retry with backoff."""

    retriable = True
    reason = Reason.TRANSIENT


class RegistryUnavailableError(TransientError):
    """The Schema Registry could not be reached; the record is kept and decoding retried."""

    reason = Reason.REGISTRY_UNAVAILABLE


class KafkaUnreachableError(TransientError):
    """No broker answered a metadata request in time."""

    reason = Reason.KAFKA_UNREACHABLE


class DeadLetterWriteError(TransientError):
    """The dead-letter topic could not be written. The writer retries (never drops) and says so."""

    reason = Reason.DLQ_WRITE_FAILED


# --- Attentive API answers --------------------------------------------------------------------------------


class ApiError(ConnectorError):
    """A call to Attentive failed. Carries the endpoint name, HTTP status (None for network errors) and a
    truncated response body — never the request headers."""

    reason = Reason.API_ERROR

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        body: str = "",
        reason: Reason | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.endpoint = endpoint
        self.status = status
        self.body = body[:2048]
        self.retry_after = retry_after


class ApiTransientError(ApiError, TransientError):
    """429, 5xx, timeouts and connection errors: an :class:`ApiError` on the one transient branch."""

    reason = Reason.SERVER_ERROR


class RateLimitedError(ApiTransientError):
    """HTTP 429: flow control, never the record's fault nor the endpoint's."""

    flow_control = True
    reason = Reason.RATE_LIMITED


class NetworkError(ApiTransientError):
    """Timeout or connection failure: no HTTP status."""

    reason = Reason.NETWORK


class ApiPermanentError(ApiError):
    """400, 404, 413, 422 (and other non-retriable 4xx): the request itself is wrong. Dead-letter."""

    permanent = True
    reason = Reason.REJECTED


class ApiAuthError(ApiError):
    """401 or 403: the key is refused. Pause consumption; never dead-letter for it."""

    auth = True
    reason = Reason.UNAUTHORIZED
