"""The auth gate: when Attentive refuses the API key, stop everything until ``/v1/me`` accepts it again.

A 401/403 is never the record's fault, so nothing is dead-lettered for it. The gate closes, every call waits
at it (the failing ones included, without using up their retry budget), the engine pauses consumption and
reports not ready, and a background task calls ``/v1/me`` every ``interval_s``. When it succeeds the gate
opens and the held calls are sent again.

The gate starts closed: the connector is not ready and consumes nothing until the first check succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from connector.errors import ApiError, ConnectorError

log = logging.getLogger(__name__)


class AuthGate:
    """Open while the API key is accepted.

    :param check: calls ``/v1/me``; returns on success, raises otherwise.
    :param interval_s: time between checks while closed.
    :param on_change: called with the new state (True = key accepted) every time it changes.
    """

    def __init__(
        self,
        check: Callable[[], Awaitable[Any]],
        *,
        interval_s: float,
        on_change: Callable[[bool], None] = lambda ok: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._check = check
        self._interval_s = interval_s
        self._on_change = on_change
        self._sleep = sleep
        self._open = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed_for_good = False
        self.checks = 0
        """How many ``/v1/me`` checks ran (for tests and logs)."""

    @property
    def ok(self) -> bool:
        return self._open.is_set()

    async def wait_ok(self) -> None:
        """Return once the key is accepted."""
        await self._open.wait()

    def start(self) -> None:
        """Begin checking right away (the gate starts closed)."""
        self._ensure_checking(first_delay=0.0)

    def trip(self, error: ConnectorError | None = None) -> None:
        """A call was refused (401/403): close the gate and start checking. Idempotent."""
        if self._closed_for_good:
            return
        if self._open.is_set():
            self._open.clear()
            log.error(
                "Attentive refused the API key (%s): pausing all consumption, not ready; checking /v1/me "
                "every %.1fs. Nothing is dead-lettered for this.",
                (error.status if isinstance(error, ApiError) else None) or "auth error",
                self._interval_s,
            )
            self._on_change(False)
        self._ensure_checking(first_delay=self._interval_s)

    def _ensure_checking(self, *, first_delay: float) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._check_until_ok(first_delay))

    async def _check_until_ok(self, first_delay: float) -> None:
        delay = first_delay
        while not self._open.is_set():
            if delay > 0:
                await self._sleep(delay)
            delay = self._interval_s
            self.checks += 1
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except ConnectorError as exc:
                # Refused again, or Attentive unreachable: stay closed and try again later.
                log.warning(
                    "auth check /v1/me failed (%s: %s); retrying in %.1fs",
                    type(exc).__name__,
                    exc.reason,
                    self._interval_s,
                )
                continue
            except Exception:
                # A bug in the check: said loudly, and the gate stays closed (nothing is sent, nothing lost).
                log.exception("BUG: auth check /v1/me raised; retrying in %.1fs", self._interval_s)
                continue
            if not self._open.is_set():
                self._open.set()
                log.info("Attentive accepts the API key: consumption resumes")
                self._on_change(True)

    async def close(self) -> None:
        """Stop checking (shutdown). Calls still waiting at a closed gate stay waiting until cancelled."""
        self._closed_for_good = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
