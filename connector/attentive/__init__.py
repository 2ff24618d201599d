"""Attentive's REST API: endpoints, the client (one classified attempt per call), rate limits, backoff, request bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.attentive.client import ApiResponse, AttentiveClient, classify
    from connector.attentive.endpoints import Endpoint
    from connector.attentive.models import build_body
    from connector.attentive.ratelimit import RateLimiter
    from connector.attentive.retry import Backoff

__all__ = ["ApiResponse", "AttentiveClient", "Backoff", "Endpoint", "RateLimiter", "build_body", "classify"]

__getattr__ = lazy_exports(
    __name__,
    {
        "ApiResponse": "connector.attentive.client",
        "AttentiveClient": "connector.attentive.client",
        "classify": "connector.attentive.client",
        "Endpoint": "connector.attentive.endpoints",
        "RateLimiter": "connector.attentive.ratelimit",
        "Backoff": "connector.attentive.retry",
        "build_body": "connector.attentive.models",
    },
)
