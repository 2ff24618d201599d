"""Injected faults: error statuses by probability, latency with jitter, a window of 401s.

Set by command-line flags at start and replaced at runtime by ``POST /__sandbox/faults`` (``{}`` clears all).
Every random choice comes from one seedable ``random.Random`` so a run can be repeated.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class FaultsError(ValueError):
    """A faults document that can't be applied; the message names the key."""


@dataclass(frozen=True)
class Faults:
    """Current fault settings. ``unauthorized_until`` is a clock time (not a duration)."""

    error_rates: dict[int, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    unauthorized_until: float = 0.0

    @classmethod
    def parse(cls, doc: Any, *, now: float) -> Faults:
        """From the ``POST /__sandbox/faults`` JSON; missing keys mean "no such fault"."""
        if not isinstance(doc, Mapping):
            raise FaultsError("faults must be a JSON object")
        unknown = set(doc) - {"error_rates", "latency_ms", "jitter_ms", "unauthorized_for_s"}
        if unknown:
            raise FaultsError(f"unknown key(s) {', '.join(sorted(unknown))}")
        rates_doc = doc.get("error_rates") or {}
        if not isinstance(rates_doc, Mapping):
            raise FaultsError("error_rates must be an object of status -> probability")
        rates: dict[int, float] = {}
        for status, p in rates_doc.items():
            try:
                code = int(status)
            except (TypeError, ValueError):
                raise FaultsError(f"error_rates: {status!r} is not an HTTP status") from None
            if not 400 <= code <= 599:
                raise FaultsError(f"error_rates: {code} is not a 4xx/5xx status")
            prob = _number(p, f"error_rates.{code}")
            if not 0.0 <= prob <= 1.0:
                raise FaultsError(f"error_rates.{code}: probability must be between 0 and 1")
            rates[code] = prob
        if sum(rates.values()) > 1.0 + 1e-9:
            raise FaultsError("error_rates: probabilities add up to more than 1")
        latency = _number(doc.get("latency_ms", 0), "latency_ms")
        jitter = _number(doc.get("jitter_ms", 0), "jitter_ms")
        unauthorized = _number(doc.get("unauthorized_for_s", 0), "unauthorized_for_s")
        for name, value in (
            ("latency_ms", latency),
            ("jitter_ms", jitter),
            ("unauthorized_for_s", unauthorized),
        ):
            if value < 0:
                raise FaultsError(f"{name} must not be negative")
        return cls(rates, latency, jitter, now + unauthorized if unauthorized > 0 else 0.0)

    def to_json(self, *, now: float) -> dict[str, Any]:
        return {
            "error_rates": {str(k): v for k, v in sorted(self.error_rates.items())},
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "unauthorized_for_s": round(max(0.0, self.unauthorized_until - now), 3),
        }

    def unauthorized(self, now: float) -> bool:
        return now < self.unauthorized_until

    def delay_s(self, rng: random.Random) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        return (self.latency_ms + (rng.uniform(0.0, self.jitter_ms) if self.jitter_ms else 0.0)) / 1000.0

    def pick_error(self, rng: random.Random) -> int | None:
        """An injected status for this request, or None."""
        if not self.error_rates:
            return None
        x = rng.random()
        acc = 0.0
        for status, p in self.error_rates.items():
            acc += p
            if x < acc:
                return status
        return None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultsError(f"{name} must be a number")
    return float(value)


def parse_pairs(pairs: list[str], name: str, convert: Callable[[str], Any]) -> dict[str, Any]:
    """``["500=0.1", "503=0.2"]`` → ``{"500": 0.1, "503": 0.2}`` for the repeatable ``KEY=VALUE`` flags."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FaultsError(f"{name}: expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = convert(value.strip())
        except ValueError:
            raise FaultsError(f"{name}: {value!r} is not a number in {pair!r}") from None
    return out
