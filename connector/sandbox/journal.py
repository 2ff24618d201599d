"""The sandbox's memory of requests: a bounded journal and per-path status counts.

Bodies are kept as received bytes and parsed only when the journal is read, so recording costs little on the
hot path. The journal keeps the newest ``max_entries``; when older ones fall off it says so (``dropped`` in
the ``GET /__sandbox/requests`` answer and one line on stderr). Stats count every request ever received.
"""

from __future__ import annotations

import collections
import sys
from typing import Any

from connector.attentive.jsonio import loads


class Journal:
    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must not be negative")
        self.max_entries = max_entries
        # (method, path, record_id, body bytes, status, unix time received, injected delay in seconds)
        self._entries: collections.deque[tuple[str, str, str | None, bytes, int, float, float]] = (
            collections.deque(maxlen=max_entries)
        )
        self._by_path: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.total = 0
        self.dropped = 0
        self._warned = False

    def record(
        self,
        method: str,
        path: str,
        record_id: str | None,
        body: bytes,
        status: int,
        when: float,
        delay_s: float = 0.0,
    ) -> None:
        """One request: ``when`` it was received (Unix seconds) and the ``delay_s`` its answer was held."""
        self.total += 1
        self._by_path[path][status] += 1
        if self.max_entries == 0:
            self.dropped += 1
            return
        if len(self._entries) == self.max_entries:
            self.dropped += 1
            if not self._warned:
                self._warned = True
                print(
                    f"sandbox: journal full ({self.max_entries} entries); dropping the oldest "
                    "(see --journal-max)",
                    file=sys.stderr,
                    flush=True,
                )
        self._entries.append((method, path, record_id, body, status, when, delay_s))

    def clear(self) -> None:
        self._entries.clear()
        self._by_path.clear()
        self.total = 0
        self.dropped = 0
        self._warned = False

    def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        """Oldest first; ``last`` keeps only the newest ``last`` entries.

        ``time`` is when the request was received, ``answered`` when its answer was sent (``time`` plus the
        injected latency): the benchmark tells a key's wait for its previous record's answer from the rest."""
        chosen = self._entries if last is None else list(self._entries)[max(0, len(self._entries) - last) :]
        return [
            {
                "method": m,
                "path": p,
                "record_id": r,
                "body": _body(b),
                "status": s,
                "time": t,
                "answered": t + d,
            }
            for m, p, r, b, s, t, d in chosen
        ]

    def to_json(self, last: int | None = None) -> dict[str, Any]:
        return {
            "requests": self.entries(last),
            "total": self.total,
            "dropped": self.dropped,
            "truncated": self.dropped > 0,
            "max_entries": self.max_entries,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "by_path": {
                path: {str(k): v for k, v in sorted(c.items())} for path, c in sorted(self._by_path.items())
            },
            "total": self.total,
        }


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
