"""Retry decisions for one call: retry after a delay, or give up and dead-letter.

The rules (pure; the clock is passed in):

* A permanent error (``error.permanent``: 400/404/413/422, invalid request) is dead-lettered at once.
* Flow control (``error.flow_control``: 429) is never the record's fault: retry after the server's
  ``Retry-After`` (or the backoff), and it never counts toward dead-lettering.
* While the endpoint's circuit is open (an outage), failures do not count either: retry as soon as the
  circuit lets calls through again — the backlog is held, not dead-lettered.
* Any other failure (5xx, network, a bug — not a ``ConnectorError``, reason ``internal_error``) is a *strike*. After ``max_attempts`` strikes,
  or ``max_age_s`` after the first strike, the record is dead-lettered: it keeps failing while the endpoint
  is otherwise healthy. Strikes and age start over when the circuit closes after an outage (its ``epoch``
  changes), so an outage never uses up a record's budget.

Auth errors never reach this policy: the deliverer pauses on them and retries after the key works again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from connector.config import RetrySettings
from connector.delivery.protocols import Backoff
from connector.errors import ConnectorError, Reason


class Verdict(enum.StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    delay_s: float = 0.0
    reason: Reason = Reason.ERROR
    """Low-cardinality label for ``api_retries{reason}`` or the dead-letter headers."""


@dataclass(slots=True)
class CallAttempts:
    """What happened to one call so far (kept across its retries; goes into the DLQ headers)."""

    failures: int = 0
    """Every failed send, of any kind (``dlq.attempts`` counts these plus the final one)."""
    strikes: int = 0
    """Failures that count toward dead-lettering (see module docstring)."""
    first_failure: float | None = None
    last_failure: float | None = None
    strike_epoch: int = -1
    """The circuit epoch the strikes were counted in."""
    first_strike: float | None = None

    @property
    def attempts(self) -> int:
        """Sends made so far that failed: the number in ``dlq.attempts``."""
        return self.failures


class RetryPolicy:
    """Decides, for each failed send, whether to retry (and after how long) or dead-letter."""

    def __init__(self, settings: RetrySettings, backoff: Backoff) -> None:
        self._s = settings
        self._backoff = backoff

    def on_failure(
        self,
        state: CallAttempts,
        error: BaseException,
        *,
        now: float,
        circuit_open: bool,
        circuit_epoch: int,
    ) -> Decision:
        """Record ``error`` in ``state`` and decide. ``circuit_open`` is the state after recording it."""
        state.failures += 1
        if state.first_failure is None:
            state.first_failure = now
        state.last_failure = now
        retry_after: float | None = None
        if isinstance(error, ConnectorError):
            reason = error.reason
            retry_after = error.retry_after
            if error.permanent:
                return Decision(Verdict.DEAD_LETTER, reason=reason)
            if error.flow_control:
                return Decision(Verdict.RETRY, self._backoff.delay(state.failures, retry_after), reason)
        else:
            reason = Reason.INTERNAL_ERROR  # a bug: the caller logged it with its traceback
        if circuit_open:
            # The circuit does the waiting (and lets only a probe through): no delay of our own.
            return Decision(Verdict.RETRY, 0.0, reason)

        if state.strike_epoch != circuit_epoch:
            state.strike_epoch = circuit_epoch
            state.strikes = 0
            state.first_strike = None
        state.strikes += 1
        if state.first_strike is None:
            state.first_strike = now
        if state.strikes >= self._s.max_attempts:
            return Decision(Verdict.DEAD_LETTER, reason=reason)
        if now - state.first_strike >= self._s.max_age_s:
            return Decision(Verdict.DEAD_LETTER, reason=reason)
        return Decision(Verdict.RETRY, self._backoff.delay(state.strikes, retry_after), reason)
