"""Per-endpoint client-side rate limiting that stays under Attentive's limits, alone or with other replicas.

Attentive counts requests per endpoint in a fixed one-second window (150/s for most endpoints, subscribe 10/s,
unsubscribe 5/s) and reports the budget on every response: ``x-ratelimit-limit`` (per second) and
``x-ratelimit-remaining`` (left in the current second). Three mechanisms keep the connector under it:

1. **Pacing (GCRA / virtual scheduling).** Under light use (alone, fewer than 3/4 of the limit sent in the
   last 1.2 s; below 20/s fewer than the limit in the last 1.02 s) a request goes at once: no second can
   come near the limit then, and waiting for a paced slot would only add latency. Beyond that, slot ``k``
   of an endpoint is due at ``t0 + k * interval`` with
   ``interval = (1 s + margin) / rate`` (10 ms margin; 20 ms under 20/s). A late wake-up (event-loop lag)
   does not move the schedule: the next slots are already due and go at once, so the lag is caught up (up to ``_CATCH_UP_S``); an idle endpoint
   banks nothing, its next slot is "now". A sliding-window cap on the actual send times (never more than
   ``limit`` in any ``1 s + 2 ms``) keeps the server's fixed one-second windows under the limit even while
   catching up. The rate is the configured one, lowered to the server's ``x-ratelimit-limit`` when smaller.
   For 1.5 s after start-up or a long idle it is 95 % of that (*warm-up*: requests waiting for new
   connections arrive late, bunched with the next ones).
2. **Sharing, only when another replica is seen.** Alone, the headers never slow us down: ``remaining`` is
   compared with what our own sends of the last second explain, and only when the server counted clearly
   more (another replica spends the same key: by 10 % of the limit at once, or by 3 % in two windows — a
   lone client's requests reordered on their way look like a small excess now and then) do the two
   mechanisms below switch on, for ``_SHARED_FOR_S`` (60 s) after the last such sighting:
   a. *Headroom slow-down.* When ``remaining`` falls below ``headroom * limit`` (at least 3), this client's
      share of it (its part of what was consumed in the window), less what it already sent or reserved, is
      spread over the rest of the (estimated) window. At ``remaining == 0`` the endpoint waits for the next
      window.
   b. *Budget gate.* The last ``remaining`` seen (our share of it), minus the requests this client has sent
      since, is what is left of the window; at zero the next request waits for the window's end.
3. **Holds.** After a 429, :meth:`EndpointLimiter.hold` stops the endpoint until ``Retry-After`` has passed,
   or only until the refusing window ends (estimated); alone, a one-second refusal holds at most 50 ms.

The window's start is estimated from the headers: ``remaining`` jumping back up means a new second began.
Clock and sleep are injectable so the tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import math
import time
from collections.abc import Mapping

from connector.attentive.endpoints import Endpoint
from connector.config import AttentiveSettings
from connector.types import Clock, Sleep

WINDOW_S = 1.0
# After the estimated end of a window wait this much longer, so a request never lands just before the
# server's boundary (our estimate of the boundary lags the real one by about one response time).
_WINDOW_MARGIN_S = 0.005
# Pacing spaces ``limit`` requests over ``1 s + _PACING_MARGIN_S`` (99% of the limit), and the sliding-window
# cap counts over the same span: arrival jitter at the server under this margin cannot put ``limit + 1``
# requests into one of its fixed seconds.
_PACING_MARGIN_S = 0.01
# Below _LOW_RATE a request late by more than 10 ms (a busy event loop, the connection pool) is likelier to
# share a server second with ``limit`` others, and each 429 is a larger share of the traffic: 98 % there
# (30 ms, i.e. 97 %, kept identity and privacy just under 97 % of their limits in the shaped benchmark).
_LOW_RATE = 20.0
_LOW_RATE_MARGIN_S = 0.02
# The sliding-window cap spans a little less than the pacing period (1 s + _PACING_MARGIN_S): time lost to a
# late wake-up can then be made up (the cap lets up to 0.8 % more through than the schedule) while the cap still
# keeps a little margin over the server's one second.
_CAP_MARGIN_S = 0.002
# A 429 for a request sent less than this after a window boundary (by the estimated phase) is the previous
# window's (see EndpointLimiter.hold).
_HOLD_TOLERANCE_S = 0.05
# Alone, a 429 of a one-second window holds the endpoint at most this long (see EndpointLimiter.hold).
_LONE_HOLD_S = 0.05
# A turn taken ahead whose request went this much later is counted again at the time it went (went()).
_LATE_SEND_S = 0.002
# How far behind "now" the schedule may be caught up after a late wake-up (never after idling).
_CATCH_UP_S = 0.2
# At low limits (subscribe 10/s, unsubscribe 5/s) a 10% headroom is under one request; start spreading the
# budget when this few are left at the latest.
_MIN_HEADROOM = 3
_ALONE_SHARE = 0.8
# Another replica is "seen" when the server counted more than our own last second explains by this much
# (at least ``_OTHERS_MIN``); the sharing mechanisms stay on for ``_SHARED_FOR_S`` after the last sighting.
_OTHERS_SLACK = 0.03
_OTHERS_MIN = 1
_SHARED_FOR_S = 60.0  # replicas come and go slowly; alone again after a minute
# A small excess (over _OTHERS_SLACK, under _OTHERS_CLEAR) switches sharing on only when it is seen again in a
# later window within _CONFIRM_S: a lone client sees one now and then — at start-up, requests that waited for a
# new connection reach the server after later ones (the shaped benchmark: 34 counted, 29 ours, then a minute of
# stop-and-go pacing); another replica spending the key shows it window after window.
_OTHERS_CLEAR = 0.1
_CONFIRM_S = 5.0
# Light use (see EndpointLimiter._light): fewer than this share of the limit sent in the last _LIGHT_SPAN_S
# (longer than a window, so arrival jitter cannot crowd one), and a request goes at once, unpaced. A simulation
# (tests/unit/test_attentive_ratelimit.py) finds no 429 more than pacing alone at any load up to 0.75.
_LIGHT_SHARE = 0.75
_LIGHT_SPAN_S = 1.2
# Below _LOW_RATE light use goes up to the whole limit in any 1 s + _LOW_RATE_MARGIN_S: at 5/s a burst of
# three already made the fourth request wait 0.6 s (the pacing that pays the burst back), and Poisson arrivals
# at half of 5/s bring four in a second often — at half the limits, 37 % of unsubscribes waited over 50 ms
# (14 % now; subscribe and identity at 10/s: 22 % → 3 %). A burst of at most 19 fits the connection pool at
# once (it does not spread on its way, as 112 requests at 150/s would), and the request after it is paced
# one window + the low-rate margin after the burst's first, the margin pacing itself keeps.
# Own send times older than this are forgotten (the cap, the own-usage count and light use look back <= 1.2 s).
_KEEP_S = 1.5
# Warm-up. The first requests after start-up (or after an idle longer than a kept-alive connection lives) wait
# for connections to open and reach the server late, in the same second as requests sent on time after them:
# the shaped benchmark's first full second counted 152-155 of 150 on every endpoint and 11 of 10 on subscribe;
# the chaos test's replicas the same at each start. For _WARMUP_S after such a cold start, pacing and the cap
# keep to _WARMUP_SHARE of the limit (11 requests fewer at 150/s: 0.4 % of a 20 s busy period at full rate).
_WARMUP_S = 1.5
_WARMUP_SHARE = 0.95
_COLD_AFTER_S = 15.0  # aiohttp closes a connection idle this long (keepalive_timeout)


class EndpointLimiter:
    """Pacing, header-driven slow-down and holds for one endpoint. Not thread-safe; one event loop."""

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._configured_rate = rate
        self._server_limit: int | None = None
        self._update_rate()
        self.headroom = headroom
        self._clock = clock
        self._sleep = sleep
        self.remaining: int | None = None
        self._tat = -math.inf  # theoretical arrival time of the next request (GCRA)
        self._not_before = -math.inf  # hold: nothing before this time
        self._slow_interval = 0.0  # extra spacing while the window's budget is low
        self._slow_until = -math.inf
        self._generation = 0  # bumped when a hold invalidates reservations made earlier
        self._shared_until = -math.inf  # another replica was seen spending this key until about then
        self._sighted_at = -math.inf  # send time of the answer that last showed a small excess (unconfirmed)
        self._window_start: float | None = None
        self._window_opened_by = -math.inf  # send time of the request whose answer opened the window
        self._window_min = 0
        self._own_in_window = 0
        self._seen_sent = -math.inf  # send time of the request whose ``remaining`` is the newest we know
        self._share = 1.0  # our part of what was consumed in this window (1 when alone)
        self._slots: collections.deque[float] = collections.deque()  # reserved send times, oldest first
        self._sent: collections.deque[float] = collections.deque()  # actual release times, oldest first
        # Turns taken ahead of their request (acquire(ahead=True)) and not yet reported gone (went()).
        self._ahead: collections.deque[float] = collections.deque()
        self._lag = 0.0  # how late the last request went after its slot (capped): what may be caught up
        self._alone_since: float | None = None  # since then no answer showed another spender (_light)
        self._last_use = -math.inf  # when the last slot was taken (a cold start after _COLD_AFTER_S without)
        self._warm_until = -math.inf  # warm-up pacing until then

    @property
    def configured_rate(self) -> float:
        return self._configured_rate

    @configured_rate.setter
    def configured_rate(self, rate: float) -> None:
        self._configured_rate = rate
        self._update_rate()

    @property
    def server_limit(self) -> int | None:
        """The last ``x-ratelimit-limit`` the server reported (``None`` before any)."""
        return self._server_limit

    @server_limit.setter
    def server_limit(self, limit: int | None) -> None:
        if limit != self._server_limit:
            self._server_limit = limit
            self._update_rate()

    def _update_rate(self) -> None:
        # Everything derived from the rate, computed when it changes rather than on every request.
        rate = self._configured_rate
        if self._server_limit:
            rate = min(rate, float(self._server_limit))
        self._rate = rate
        self._cap = max(1, math.floor(rate + 1e-9))
        low = rate < _LOW_RATE
        margin = _LOW_RATE_MARGIN_S if low else _PACING_MARGIN_S
        self._base_interval = (WINDOW_S + margin) / rate
        self._warm_cap = max(1, math.floor(rate * _WARMUP_SHARE + 1e-9))
        self._warm_interval = max(self._base_interval, WINDOW_S / (rate * _WARMUP_SHARE))
        # Light use: the span looked back over and the share of the cap that may go unpaced in it.
        self._light_span = WINDOW_S + margin if low else _LIGHT_SPAN_S
        self._light_share = 1.0 if low else _LIGHT_SHARE

    @property
    def rate(self) -> float:
        """Requests per second this client paces to: configured, capped by the server's reported limit."""
        return self._rate

    @property
    def shared(self) -> bool:
        """Whether another replica was recently seen spending this endpoint's budget."""
        return self._clock() < self._shared_until

    def _cap_count(self, now: float) -> int:
        """Requests allowed in any ``1 s + _CAP_MARGIN_S`` of our own sends (fewer while warming up)."""
        return self._warm_cap if now < self._warm_until else self._cap

    @property
    def warming_up(self) -> bool:
        """Whether pacing keeps to the warm-up share of the limit (just after a cold start)."""
        return self._clock() < self._warm_until

    def _interval(self, now: float) -> float:
        base = self._warm_interval if now < self._warm_until else self._base_interval
        if now < self._slow_until and now < self._shared_until:
            return max(base, self._slow_interval)
        return base

    def _earliest(self, now: float, times: collections.deque[float]) -> float:
        """Earliest time the sliding-window cap allows another request, given earlier ``times``."""
        n = self._cap_count(now)
        if len(times) < n:
            return -math.inf
        return times[-n] + WINDOW_S + _CAP_MARGIN_S

    def _light(self, now: float) -> bool:
        """Under light use a request goes at once instead of waiting for its paced slot.

        Pacing spaces even two requests ``1 / rate`` apart, which at subscribe's 10/s adds up to 100 ms to a
        request that arrives just after another, at no risk to the limit. So, alone (for a whole window every
        answer showed the server counted at most one more than our own sends: at start-up, and whenever
        another replica may spend the key, requests are paced), with no hold and nobody waiting for a
        reserved slot, a request may go now while fewer than 3/4 of the limit were sent in the last
        ``_LIGHT_SPAN_S``: such a second stays far from the limit whatever the arrival jitter. Below
        ``_LOW_RATE`` it may go while fewer than the limit were sent in the last ``1 s`` + the low-rate pacing
        margin: the same spacing from the request ``limit`` places before it as pacing keeps. The schedule
        still counts it (each send moves the next paced slot on by one interval), so a burst is paid back by
        the pacing that follows: no second holds more than the pacing allows.
        """
        alone_since = self._alone_since
        if (
            alone_since is None
            or now - alone_since < WINDOW_S
            or now < self._not_before
            or (self._slots and self._slots[-1] > now)
        ):
            return False
        sent = self._sent
        recent = len(sent) - bisect.bisect_right(sent, now - self._light_span)
        return recent + 1 <= self._light_share * self._cap_count(now)

    def _next_slot(self, now: float) -> float:
        shared = now < self._shared_until
        if not shared and self._light(now):
            return now
        # A schedule left behind by a late wake-up is caught up (the next slots are already due); one left
        # behind by idling is not (no banked burst): only the last request's lateness may be made up.
        floor = now if shared else now - self._lag
        slot = max(self._tat, floor, self._not_before, self._earliest(now, self._slots))
        return self._gate(slot) if shared else slot

    def delay(self) -> float:
        """Seconds until a request could start now (0 when it could go at once). Does not reserve."""
        now = self._clock()
        return max(0.0, self._next_slot(now) - now, self._earliest(now, self._sent) - now)

    def try_acquire(self, *, ahead: bool = False) -> bool:
        """Take the next slot if it is due now (what :meth:`delay` ``<= 0`` promises); else change nothing.

        The common case on the hot path, without a coroutine: :meth:`acquire` starts with it. ``ahead`` as
        in :meth:`acquire`.
        """
        now = self._clock()
        self._forget(now)
        if now - self._last_use >= _COLD_AFTER_S:  # the first request after start-up or a long idle
            self._warm_until = now + _WARMUP_S
        self._last_use = now
        slot = self._next_slot(now)
        if slot > now or self._earliest(now, self._sent) > now:
            return False
        self._tat = max(self._tat, slot) + self._interval(slot)
        self._slots.append(slot)
        self._sent.append(now)
        if ahead:
            self._ahead.append(now)
        self._lag = min(_CATCH_UP_S, max(0.0, now - slot))
        return True

    async def acquire(self, *, ahead: bool = False) -> None:
        """Wait for this endpoint's next slot and take it.

        ``ahead``: the request will go a little later (the delivery pumps take the turn, then wait for a
        request slot); call :meth:`went` when it does, so the cap counts it when it really went.
        """
        if self.try_acquire(ahead=ahead):
            return
        while True:
            now = self._clock()
            self._forget(now)
            gen = self._generation
            slot = self._next_slot(now)
            self._tat = max(self._tat, slot) + self._interval(slot)
            self._slots.append(slot)
            if slot > now:
                await self._sleep(slot - now)
                now = self._clock()
                if (
                    gen != self._generation
                    or now < self._not_before
                    or (self.shared and self._gate(slot) != slot)
                ):
                    # A hold, a slow-down or newer headers arrived while we slept and our slot no longer fits:
                    # give it back and take a new one.
                    with contextlib.suppress(ValueError):
                        self._slots.remove(slot)
                    continue
            # The cap on actual send times: a late wake-up followed by on-time ones must not crowd a second.
            while (wait := self._earliest(now, self._sent) - now) > 0:
                await self._sleep(wait)
                now = self._clock()
            self._sent.append(now)
            if ahead:
                self._ahead.append(now)
            self._lag = min(_CATCH_UP_S, max(0.0, now - slot))
            return

    def went(self) -> None:
        """The request of the oldest turn taken ahead goes now: count it at this time, not at the turn's.

        A turn taken ahead waits for a request slot; after a stall the slots free up all at once and a few of
        one second's turns went in the next with that second's own (the shaped benchmark: 155-170 requests in
        a server window, then 429s at its end). Moved to now, the sliding-window cap counts them where the
        server does. Moving a send later only ever makes the cap stricter, so a turn that went unused (its
        entry taken here by the next request) errs on the safe side.
        """
        if not self._ahead:
            return
        granted = self._ahead.popleft()
        now = self._clock()
        if now - granted < _LATE_SEND_S:
            return
        sent = self._sent
        i = bisect.bisect_left(sent, granted)
        if i < len(sent) and sent[i] == granted:
            del sent[i]
        bisect.insort(sent, now)

    def _forget(self, now: float) -> None:
        for times in (self._slots, self._sent, self._ahead):
            while times and times[0] < now - _KEEP_S:
                times.popleft()

    def _gate(self, slot: float) -> float:
        """``slot``, or just after the window's end when the window's budget is already spoken for.

        The budget is the newest ``remaining`` (our share of it, when other replicas spend it too) minus the
        requests we reserved after that answer's request and before ``slot``.
        """
        if self.remaining is None or self._window_start is None:
            return slot
        end = self._window_start + WINDOW_S
        if slot >= end:
            return slot
        before = self._reserved_between(self._seen_sent, slot)
        return end + _WINDOW_MARGIN_S if self.remaining * self._share - before < 0.5 else slot

    def _reserved_between(self, after: float, before: float) -> int:
        return sum(1 for s in self._slots if after < s < before)

    def hold(self, seconds: float, *, sent_at: float | None = None) -> None:
        """Send nothing on this endpoint for ``seconds`` (a 429's Retry-After) — or only until the server's
        window that refused the request ends, when a window is known and that comes first.

        ``Retry-After`` is whole seconds, so in a one-second window it always says ``1`` for "the rest of this
        second", which is half of one on average: waiting it out lost a second of the endpoint per 429.

        ``sent_at`` (clock time the refused request started) places the refusal in its window: the answer
        arrives a response time after the request, often after the next window began. The windows' phase is
        the send time of the first request seen answered in a new window (see :meth:`observe`): the server's
        boundary came just before it reached the server. A request sent before that phase — or less than
        ``_HOLD_TOLERANCE_S`` after a whole number of seconds after it — was refused by a window that has
        ended: no hold (a 429 answered at 16.09 for a request of 15.99 held the endpoint until 17.07; one whose
        answer arrived after the window estimate had moved on by the clock alone held it for a whole second —
        the shaped benchmark's one-second dips of every 150/s endpoint after a garbage-collection pause).

        **Alone** (no other spender seen — the 429's own headers are observed first, and one showing the
        window spent by others switches sharing on), a one-second refusal holds at most ``_LONE_HOLD_S``: a
        lone client paced under the limit fills a server window only at its end, so the boundary is just
        ahead, whatever the estimate says. The estimate can be wrong by more than the tolerance: the phase is a
        *send* time, and a request that waited between its turn and the socket (a stalled loop, a busy pool)
        reaches the server later than that — the shaped benchmark's 429s at x.97-x.99 of the server's second
        were held 0.85 s into the next one (its rate there 67 of 150) by a phase 150 ms early. Holding
        50 ms costs about seven requests at 150/s; if the window had not ended, the next 429 holds again.
        """
        now = self._clock()
        until = now + max(0.0, seconds)
        if seconds <= WINDOW_S and now >= self._shared_until:
            until = min(until, now + _LONE_HOLD_S)
        phase = self._window_opened_by
        if phase > -math.inf and seconds <= WINDOW_S:
            # Windows are fixed seconds: the refusing one ends a whole number of seconds after the phase. A
            # request sent just after a later boundary (the phase moved on by whole seconds) was refused by
            # the window before it: a lone client's window fills only at its end, and the phase may be a few
            # ms early (the opener's time on its way to the server). In the opener's own window, no such doubt.
            ref = now if sent_at is None else min(now, sent_at)
            k = math.floor((ref - phase) / WINDOW_S)
            if k >= 1 and ref - (phase + k * WINDOW_S) < _HOLD_TOLERANCE_S:
                k -= 1
            end = phase + (k + 1) * WINDOW_S
            until = min(until, end + _WINDOW_MARGIN_S)
        if until > now:
            self._hold_until(until)

    def _hold_until(self, until: float) -> None:
        if until > self._not_before:
            self._not_before = until
            self._tat = until
            self._generation += 1

    def _others_seen(self, lim: int, remaining: int, sent: float) -> bool:
        """The server counted clearly more in its current window than our own sends of the last second:
        by more than ``_OTHERS_CLEAR`` of the limit at once, or by more than ``_OTHERS_SLACK`` in two windows
        within ``_CONFIRM_S``.

        Our sends in ``(sent - 1.05 s, sent + 5 ms]``: ``_sent`` is in time order, so two binary searches
        (C ``bisect`` over a deque of at most ~1.5 s of sends) count them without walking the window. Also
        notes since when every answer showed at most one more than ours (``_alone_since``: light use).
        """
        sent_times = self._sent
        own = bisect.bisect_right(sent_times, sent + 0.005) - bisect.bisect_right(
            sent_times, sent - WINDOW_S - 0.05
        )
        excess = lim - remaining - own
        if excess > 1:
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = self._clock()
        if excess > max(_OTHERS_MIN, _OTHERS_CLEAR * lim):
            return True
        if excess <= max(_OTHERS_MIN, _OTHERS_SLACK * lim):
            return False
        first = self._sighted_at
        if WINDOW_S <= sent - first <= _CONFIRM_S:
            return True  # seen again, a window later
        if not 0 <= sent - first < WINDOW_S:
            self._sighted_at = sent  # a first sighting (or the last one is too old to confirm)
        return False

    def _next_window(self, now: float, lim: int) -> None:
        """A second has passed since the window began and no answer showed the next one's budget yet (they
        are late): move on by whole seconds, keeping the phase. (Opening it at this answer instead put the
        phase anywhere in the second, and a 429 answered then held the endpoint for a whole one.)"""
        assert self._window_start is not None
        seconds = math.floor((now - self._window_start) / WINDOW_S) * WINDOW_S
        # None of the new window's budget seen yet: its lowest ``remaining`` is the whole limit.
        self._begin_window(self._window_start + seconds, self._window_opened_by + seconds, lim)
        self.remaining = None

    def _begin_window(self, start: float, opened_by: float, window_min: int) -> None:
        """Track a new server window: its estimated start, its phase (the send time of its opener), the lowest
        ``remaining`` seen in it; what was counted in the last one is cleared."""
        self._window_start = start
        self._window_opened_by = opened_by
        self._window_min = window_min
        self._own_in_window = 0
        self._slow_until = -math.inf
        self._seen_sent = -math.inf
        self._share = 1.0

    def observe(self, limit: int | None, remaining: int | None, *, sent_at: float | None = None) -> None:
        """Feed one response's ``x-ratelimit-limit`` / ``x-ratelimit-remaining`` (either may be missing).

        Alone, only a lower ``limit`` changes the pacing. ``remaining`` lower than our own usage explains
        means another replica shares the key, and switches on the headroom slow-down and budget gate.
        ``sent_at`` (clock time the request started) lets a late answer from the previous window — say
        ``remaining: 0`` arriving after the new second began — be recognised as stale and ignored.
        """
        now = self._clock()
        sent = now if sent_at is None else sent_at
        if limit is not None and limit > 0:
            self.server_limit = limit
        if remaining is None:
            return
        lim = self.server_limit or int(self.configured_rate)
        if self._window_start is not None and now - self._window_start >= WINDOW_S:
            self._next_window(now, lim)
        if sent < self._window_opened_by:
            return  # a late answer from an earlier window
        if self._others_seen(lim, remaining, sent):
            self._shared_until = now + _SHARED_FOR_S
        jump = max(1, math.ceil(0.05 * lim))
        start = self._window_start
        if start is None or remaining >= self._window_min + jump:
            self._begin_window(now, sent, remaining)
            start = now
        if sent >= self._seen_sent:  # answers can arrive out of order: keep the newest request's view
            self._seen_sent = sent
            self.remaining = remaining
        self._window_min = min(self._window_min, remaining)
        self._own_in_window += 1
        if now >= self._shared_until:
            return  # alone: pacing at the rate already keeps every window under the limit
        window_end = start + WINDOW_S
        consumed = max(1, lim - remaining)
        share = min(1.0, self._own_in_window / consumed)
        # Answers that cross the window boundary make a lone client look like it owns a bit less than all of
        # the window; that is noise, not another replica.
        self._share = 1.0 if share >= _ALONE_SHARE else share
        if remaining <= 0:
            self._hold_until(window_end + _WINDOW_MARGIN_S)
            return
        if remaining < max(self.headroom * lim, _MIN_HEADROOM):
            # Spread what is left of our share — after the requests we already sent or reserved in this
            # window — over the time left after them; under one request's worth: the next window.
            start = max(now, self._tat)
            if start >= window_end:
                return  # new reservations already fall into the next window
            budget = remaining * self._share - self._reserved_between(sent, window_end)
            free = window_end - start
            interval = free / (budget + 1.0) if budget >= 1.0 else free + _WINDOW_MARGIN_S
            if interval > 1.0 / self.rate:
                self._tat = start + interval
                self._slow_interval = interval
                self._slow_until = window_end + _WINDOW_MARGIN_S


class RateLimiter:
    """One :class:`EndpointLimiter` per endpoint at ``settings.rate_limit(endpoint)``."""

    def __init__(
        self,
        settings: AttentiveSettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._limiters = {
            e: EndpointLimiter(
                settings.rate_limit(e), headroom=settings.rate_limit_headroom, clock=clock, sleep=sleep
            )
            for e in Endpoint
        }

    def __getitem__(self, endpoint: Endpoint) -> EndpointLimiter:
        return self._limiters[endpoint]

    def try_acquire(self, endpoint: Endpoint, *, ahead: bool = False) -> bool:
        """Take ``endpoint``'s turn if it is free now, without waiting (see :meth:`EndpointLimiter.try_acquire`)."""
        return self._limiters[endpoint].try_acquire(ahead=ahead)

    async def acquire(self, endpoint: Endpoint, *, ahead: bool = False) -> None:
        await self._limiters[endpoint].acquire(ahead=ahead)

    def went(self, endpoint: Endpoint) -> None:
        """The request of ``endpoint``'s oldest turn taken ahead goes now (see :meth:`EndpointLimiter.went`)."""
        self._limiters[endpoint].went()

    def observe_headers(
        self, endpoint: Endpoint, headers: Mapping[str, str], *, sent_at: float | None = None
    ) -> int | None:
        """Update from a response's headers (a case-insensitive mapping such as aiohttp's or ``httpx.Headers``),
        each read once; returns ``x-ratelimit-remaining`` as an int (``None`` when absent) for the gauge."""
        remaining = header_int(headers.get("x-ratelimit-remaining"))
        self._limiters[endpoint].observe(
            header_int(headers.get("x-ratelimit-limit")), remaining, sent_at=sent_at
        )
        return remaining

    def hold(self, endpoint: Endpoint, seconds: float, *, sent_at: float | None = None) -> None:
        self._limiters[endpoint].hold(seconds, sent_at=sent_at)


def header_int(value: str | None) -> int | None:
    """A rate-limit header as an integer (``"39"``, also ``"39.0"``); ``None`` when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value)  # int() ignores surrounding whitespace
    except ValueError:
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # not a number, NaN, inf
            return None
