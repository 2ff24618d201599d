"""The seams of the delivery stage: what it needs from the Attentive client, the router and the DLQ producer.

Each is a :class:`typing.Protocol`, so production code passes the real objects
(:class:`connector.attentive.client.AttentiveClient`, :class:`connector.rules.router.Router`, confluent-kafka's
``Consumer``/``Producer``) and unit tests pass small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from connector.attentive.endpoints import Endpoint
from connector.types import Call, RouteResult, SourceRecord


class ApiSender(Protocol):
    """One attempt per ``send`` (after the endpoint's rate limiter); errors from :mod:`connector.errors`."""

    async def wait_turn(self, endpoint: Endpoint) -> None:
        """Reserve ``endpoint``'s next rate-limiter turn and wait until it is due (at once when it is)."""
        ...

    def try_turn(self, endpoint: Endpoint) -> bool:
        """Take ``endpoint``'s next rate-limiter turn if it is due now (True), else take nothing (False);
        a turn taken is then used with ``send(call, turn_taken=True)``, as after :meth:`wait_turn`."""
        ...

    async def send(self, call: Call, *, turn_taken: bool = False) -> Any:
        """One attempt; waits for the endpoint's turn first unless ``turn_taken`` (by :meth:`wait_turn`)."""
        ...

    async def me(self) -> Any: ...

    async def aclose(self) -> None: ...


class RecordRouter(Protocol):
    """Turns a record into calls. Raises a retriable error (registry down) when it cannot decide yet."""

    def route(self, record: SourceRecord) -> RouteResult: ...

    def rule_names(self) -> list[str]:
        """The names of the rule table's rules, in order (``dlq replay --rule`` checks against them)."""
        ...

    def needs_registry(self, record: SourceRecord) -> bool:
        """True when routing ``record`` would first fetch a schema from the registry (a blocking HTTP call,
        made off the event loop)."""
        ...


class Backoff(Protocol):
    """Delay before retry number ``attempt`` (1-based), honouring the server's ``retry_after`` hint."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float: ...


class KafkaProducer(Protocol):
    """The parts of ``confluent_kafka.Producer`` the dead-letter writer uses."""

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = -1) -> int: ...
    def flush(self, timeout: float = -1) -> int: ...


ProducerFactory = Callable[[dict[str, Any]], KafkaProducer]
