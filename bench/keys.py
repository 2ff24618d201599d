"""Key distributions for the Attentive-shaped runs: who the records belong to decides how many lanes can run.

Records of one customer are delivered one at a time (per-key order), so how records spread over customers
bounds the concurrency the engine can find. The benchmark runs the shaped phase with two distributions and
says which in its JSON (``key_distribution``):

* ``samples`` — the sample pool as generated: a small population, about 4 records per customer in the pool
  and, because the shaped mix cycles through the pool, about 25 per customer in a saturation run (12,400
  records, 499 keys: ``saturation_keys`` in the JSON);
* ``realistic`` — 50,000 customers whose numbers of events follow a Zipf law over counts
  (P(k events) ∝ k^-2.5, at most 20 in a run): most customers have one or two events, a few have a dozen or more.
  Each record keeps its content and gets a customer id (and Kafka key) drawn so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bench.backlog import Pool, PoolRecord

SAMPLES = "samples"
REALISTIC = "realistic"
DESCRIPTIONS = {
    SAMPLES: "samples: the generated pool's customers (~25 records per customer in a saturation run)",
    REALISTIC: "realistic: 50,000 customers, events per customer Zipf(2.5) over counts (most have 1-2)",
}
CUSTOMERS = 50_000
ZIPF_EXPONENT = 2.5
MAX_EVENTS = 20


def realistic_ids(n: int, *, seed: int = 7) -> list[str]:
    """``n`` customer ids, each customer appearing k times with P(k) ∝ k^-2.5, shuffled."""
    rng = random.Random(seed)
    weights = [k**-ZIPF_EXPONENT for k in range(1, MAX_EVENTS + 1)]
    counts = rng.choices(range(1, MAX_EVENTS + 1), weights=weights, k=CUSTOMERS)
    ids: list[str] = []
    for customer, k in enumerate(counts):
        ids.extend([f"c{customer:05d}"] * k)
        if len(ids) >= n:
            break
    while len(ids) < n:  # more records than 50,000 customers' events: draw more of the same law
        ids.append(f"c{rng.randrange(CUSTOMERS):05d}")
    ids = ids[:n]
    rng.shuffle(ids)
    return ids


def rekey(pool: Pool, records: Sequence[PoolRecord], distribution: str, *, seed: int = 7) -> list[PoolRecord]:
    """``records`` with customer ids (and Kafka keys) drawn from ``distribution``; ``samples`` keeps them."""
    if distribution == SAMPLES:
        return list(records)
    ids = realistic_ids(len(records), seed=seed)
    out: list[PoolRecord] = []
    for r, cid in zip(records, ids, strict=True):
        data: dict[str, Any] = dict(r.data)
        customer = data.get("customer")
        if isinstance(customer, Mapping):
            data["customer"] = {**customer, "id": cid}
        out.append(replace(r, key=cid.encode(), value=pool.encoders[r.topic].encode(data), data=data))
    return out


def spread(records: Sequence[PoolRecord]) -> dict[str, float]:
    """How many distinct keys and records per key (for the JSON)."""
    keys = [r.key for r in records]
    distinct = len(set(keys))
    return {
        "records": len(keys),
        "distinct_keys": distinct,
        "records_per_key": round(len(keys) / max(distinct, 1), 2),
    }
