"""Delivery: one call through the auth gate, the endpoint's circuit and the retry policy; dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector._exports import lazy_exports

if TYPE_CHECKING:
    from connector.delivery.auth import AuthGate
    from connector.delivery.circuit import CircuitBoard, CircuitState
    from connector.delivery.dead_letter import DeadLetterWriter, Failure, dead_letter_headers
    from connector.delivery.deliverer import CallDeliverer, DeliveryFailed, RecordTicket
    from connector.delivery.protocols import ApiSender, KafkaProducer, RecordRouter
    from connector.delivery.retry import CallAttempts, RetryPolicy, Verdict

__all__ = [
    "ApiSender",
    "AuthGate",
    "CallAttempts",
    "CallDeliverer",
    "CircuitBoard",
    "CircuitState",
    "DeadLetterWriter",
    "DeliveryFailed",
    "Failure",
    "KafkaProducer",
    "RecordRouter",
    "RecordTicket",
    "RetryPolicy",
    "Verdict",
    "dead_letter_headers",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "CallDeliverer": "connector.delivery.deliverer",
        "DeliveryFailed": "connector.delivery.deliverer",
        "RecordTicket": "connector.delivery.deliverer",
        "DeadLetterWriter": "connector.delivery.dead_letter",
        "Failure": "connector.delivery.dead_letter",
        "dead_letter_headers": "connector.delivery.dead_letter",
        "CircuitBoard": "connector.delivery.circuit",
        "CircuitState": "connector.delivery.circuit",
        "AuthGate": "connector.delivery.auth",
        "CallAttempts": "connector.delivery.retry",
        "RetryPolicy": "connector.delivery.retry",
        "Verdict": "connector.delivery.retry",
        "ApiSender": "connector.delivery.protocols",
        "RecordRouter": "connector.delivery.protocols",
        "KafkaProducer": "connector.delivery.protocols",
    },
)
