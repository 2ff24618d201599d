"""Metrics, health endpoints and logs (masked, JSON or text)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.observability.health import HealthServer, HealthState
    from connector.observability.logs import configure_logging, mask, register_secret
    from connector.observability.metrics import Metrics

__all__ = ["HealthServer", "HealthState", "Metrics", "configure_logging", "mask", "register_secret"]

__getattr__ = lazy_exports(
    __name__,
    {
        "Metrics": "connector.observability.metrics",
        "HealthServer": "connector.observability.health",
        "HealthState": "connector.observability.health",
        "configure_logging": "connector.observability.logs",
        "mask": "connector.observability.logs",
        "register_secret": "connector.observability.logs",
    },
)
