"""Problems found in a rule table, as the one-line messages users see."""

from __future__ import annotations

from pathlib import Path


class Problems:
    """Collects problems as ``file: rule 'name': where: message`` lines, in the order found."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, message: str, *, rule: str | None = None, where: str | None = None) -> None:
        parts = [str(self.source)]
        if rule is not None:
            parts.append(f"rule {rule!r}")
        if where:
            parts.append(where)
        parts.append(message)
        self.lines.append(": ".join(parts))
