"""Small asyncio helpers shared by the stages.

:func:`wait_event` exists because ``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives
while the awaited event is being set (CPython gh-86296): a loop such as "wait for a wake-up or a timeout, then
work" then never sees it was cancelled, and whoever awaits the cancelled task hangs forever — seen here as a
shutdown that hung about one run in five once commits followed every watermark move.
``asyncio.timeout`` (3.11+) propagates cancellation correctly.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True if it was set. Cancellation propagates."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
