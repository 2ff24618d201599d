"""Attentive-shaped: the sandbox with Attentive's rate limits and 100 ± 50 ms latency (uniform, 50-150 ms).

Two measurements from the sandbox's own request journal (what Attentive would have seen):

1. **Saturation.** A backlog sized so that every endpoint has about ``limit × busy_s`` requests to make (and no more)
   (:func:`bench.backlog.shaped_mix`). Per endpoint: the achieved rate of 2xx answers over the window it was
   busy (first to last 2xx), and the share of its requests answered 429.
2. **Added latency at half the limit.** Records produced at a steady rate of half each endpoint's limit
   (at most half for every endpoint, fan-out included), after a warm-up of a few seconds at the same pace
   that is reported on its own (``latency_warmup``: a connector just started opens its connections then).
   For a record's first call, *added latency* = the time the sandbox received the request − the record's Kafka
   timestamp (set by the producer when it produced the record). The sandbox's simulated latency is spent
   *after* it receives a request, so it is excluded by construction; what is left is Kafka (produce → fetch)
   plus the connector (decode, route, lanes, rate limiter, HTTP send). Later calls of a fan-out are not
   counted: they wait, by design, for the earlier call's answer and so include the sandbox's latency.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from connector.attentive.endpoints import BY_PATH, Endpoint


def journal_time_ms(entry: Mapping[str, Any], field: str = "time") -> float:
    """A journal entry's ``time`` (or ``answered``) in Unix milliseconds (it may be seconds as a number, or
    an RFC 3339 string)."""
    t = entry[field]
    if isinstance(t, str):
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
    t = float(t)
    return t * 1000 if t < 1e11 else t  # seconds vs already milliseconds


def record_and_call(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    """A journal entry's record (``topic/partition/offset``) and call index (``"0"`` unless a fan-out's
    ``/<i>`` says otherwise); ``None`` for a request without a record id (``/v1/me``)."""
    parts = str(entry.get("record_id") or "").split("/")
    if len(parts) < 3:
        return None
    return "/".join(parts[:3]), parts[3] if len(parts) == 4 else "0"


def saturation(
    journal: Iterable[Mapping[str, Any]], limits: Mapping[Endpoint, float], *, window_s: float | None = None
) -> dict[str, dict[str, float | int | None]]:
    """Per endpoint: limit, achieved 2xx/s over its busy window, share of 429s, request count.

    An endpoint with fewer than two 2xx answers has no busy window of its own; it is rated over the whole
    measurement (``window_s``) instead — an endpoint starved while its calls waited is a 0, not a blank.
    ``share_429`` is ``None`` only for an endpoint that received no request at all.
    """
    times: dict[Endpoint, list[float]] = collections.defaultdict(list)
    total: dict[Endpoint, int] = collections.Counter()
    limited: dict[Endpoint, int] = collections.Counter()
    for e in journal:
        endpoint = BY_PATH.get(str(e.get("path", "")))
        if endpoint is None:
            continue
        total[endpoint] += 1
        status = int(e["status"])
        if status == 429:
            limited[endpoint] += 1
        elif 200 <= status < 300:
            times[endpoint].append(journal_time_ms(e) / 1000)
    out: dict[str, dict[str, float | int | None]] = {}
    for endpoint, limit in limits.items():
        ts = sorted(times.get(endpoint, []))
        window = ts[-1] - ts[0] if len(ts) >= 2 else 0.0
        # n answers spread evenly over a window are n - 1 intervals apart.
        if window > 0:
            achieved: float | None = (len(ts) - 1) / window
        elif window_s:
            achieved = len(ts) / window_s
        else:
            achieved = None
        n = total.get(endpoint, 0)
        out[str(endpoint)] = {
            "limit": limit,
            "achieved_per_s": round(achieved, 2) if achieved is not None else None,
            "share_429": round(limited.get(endpoint, 0) / n, 5) if n else None,
            "requests": n,
            "busy_s": round(window, 2),
        }
    return out


def added_latencies_ms(
    journal: Iterable[Mapping[str, Any]], produced_ts: Mapping[str, int]
) -> dict[str, float]:
    """Per record (``topic/partition/offset``): receive time of its first successful first call − its Kafka
    timestamp. Records with no successful call in the journal are absent."""
    first: dict[str, float] = {}
    for e in journal:
        ids = record_and_call(e)
        if ids is None or ids[1] != "0":
            continue  # a later call of a fan-out (see the module doc)
        base = ids[0]
        if base not in produced_ts or not 200 <= int(e["status"]) < 300:
            continue
        t = journal_time_ms(e)
        if base not in first or t < first[base]:
            first[base] = t
    return {base: t - produced_ts[base] for base, t in first.items()}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def added_latency_by_endpoint(
    journal: Iterable[Mapping[str, Any]], by_record: Mapping[str, float]
) -> dict[str, dict[str, float | int | None]]:
    """Added latency per endpoint of each record's first call (count, p50, p99 in ms): which endpoints the
    slowest records went to (at half the limits a 5/s endpoint's records queue where a 150/s one's do not)."""
    first_path: dict[str, tuple[float, str]] = {}
    for e in journal:
        ids = record_and_call(e)
        if ids is None or ids[1] != "0":
            continue
        base = ids[0]
        if base not in by_record or not 200 <= int(e["status"]) < 300:
            continue
        t = journal_time_ms(e)
        if base not in first_path or t < first_path[base][0]:
            first_path[base] = (t, str(e["path"]))
    per: dict[str, list[float]] = collections.defaultdict(list)
    for base, (_, path) in first_path.items():
        endpoint = BY_PATH.get(path)
        per[str(endpoint) if endpoint is not None else path].append(by_record[base])
    return {
        name: {
            "records": len(v),
            "p50_ms": None if (p := percentile(v, 0.5)) is None else round(p, 1),
            "p99_ms": None if (q := percentile(v, 0.99)) is None else round(q, 1),
        }
        for name, v in sorted(per.items())
    }


def calls_per_record(journal: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Per record (``topic/partition/offset``): how many calls it made (a fan-out's record ids end ``/<i>``)."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for e in journal:
        ids = record_and_call(e)
        if ids is not None:
            seen[ids[0]].add(ids[1])
    return {base: len(calls) for base, calls in seen.items()}


def answer_ms_per_record(journal: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Per record: how long the sandbox took to answer its calls, summed over each call's successful attempt
    (``answered − time`` in the journal: the latency it drew and slept). Requests without a record id or an
    ``answered`` time, and refused attempts (their retry is the connector's business), count nothing."""
    out: dict[str, float] = collections.defaultdict(float)
    for e in journal:
        ids = record_and_call(e)
        if ids is None or "answered" not in e or not 200 <= int(e["status"]) < 300:
            continue
        out[ids[0]] += journal_time_ms(e, "answered") - journal_time_ms(e)
    return dict(out)


def ordering_floor_ms(
    produced_ts: Mapping[str, int],
    keys: Mapping[str, bytes | None],
    calls: Mapping[str, int],
    *,
    min_answer_ms: float,
    answers_ms: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Per record: the least added latency *any* connector that keeps per-key order could have had.

    A record cannot be sent before its key's previous record (same partition, lower offset) is finished, and
    that one cannot finish before it was produced (or could start) plus its answers: ``min_answer_ms`` per
    call (the sandbox's shortest answer: its fixed latency; the jitter only adds), or — given
    ``answers_ms`` (:func:`answer_ms_per_record`) — the answer times the sandbox actually drew for it. So
    with zero own cost and no rate limit, a record's first call goes at ``max(its timestamp, the previous
    one's earliest finish)``. Keyless records are not ordered: floor 0. The p99 of these is the ordering
    guarantee's price, not the connector's.
    """
    chains: dict[tuple[str, str, bytes], list[tuple[int, str]]] = collections.defaultdict(list)
    floor: dict[str, float] = {}
    for rid in produced_ts:
        topic, partition, offset = rid.split("/")
        key = keys.get(rid)
        if key is None:
            floor[rid] = 0.0
        else:
            chains[(topic, partition, key)].append((int(offset), rid))
    for chain in chains.values():
        free_at = float("-inf")
        for _, rid in sorted(chain):
            start = max(float(produced_ts[rid]), free_at)
            floor[rid] = start - produced_ts[rid]
            drawn = (answers_ms or {}).get(rid)
            free_at = start + (drawn if drawn is not None else calls.get(rid, 1) * min_answer_ms)
    return floor


def per_second(journal: list[Mapping[str, Any]]) -> dict[str, str]:
    """2xx answers per endpoint in each second from the first request ("148 149 57 …"; ``!`` marks a second
    with a 429): where a saturation run lost time — a stall of every endpoint at once, or of one."""
    if not journal:
        return {}
    t0 = min(journal_time_ms(e) for e in journal)
    ok: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    refused: dict[str, set[int]] = collections.defaultdict(set)
    for e in journal:
        endpoint = BY_PATH.get(str(e["path"]))
        if endpoint is None:
            continue
        second = int((journal_time_ms(e) - t0) / 1000)
        status = int(e["status"])
        if 200 <= status < 300:
            ok[str(endpoint)][second] += 1
        elif status == 429:
            refused[str(endpoint)].add(second)
    last = max((max(c) for c in ok.values() if c), default=0)
    return {
        name: " ".join(f"{c[i]}{'!' if i in refused[name] else ''}" for i in range(last + 1))
        for name, c in sorted(ok.items())
    }
