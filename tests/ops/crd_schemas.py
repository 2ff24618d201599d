"""Structural schemas for the custom resources the chart renders, which kubernetes-validate does not ship.

Each schema is a strict subset of the operator's CRD (prometheus-operator ``monitoring.coreos.com/v1``,
KEDA ``keda.sh/v1alpha1``): the fields the chart uses, with their types and required keys, closed with
``additionalProperties: false`` so a misspelt field in a template fails. Field names follow the CRDs'
OpenAPI schemas (prometheus-operator v0.7x, KEDA 2.1x).
"""

from __future__ import annotations

from typing import Any

_STR: dict[str, Any] = {"type": "string"}
_LABELS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def _closed(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": props, "required": required or []}


_METADATA = _closed(
    {"name": _STR, "namespace": _STR, "labels": _LABELS, "annotations": _LABELS}, ["name", "namespace"]
)
_SELECTOR = _closed({"matchLabels": _LABELS})
_NAMESPACE_SELECTOR = _closed({"matchNames": {"type": "array", "items": _STR}, "any": {"type": "boolean"}})
_RELABELINGS: dict[str, Any] = {
    "type": "array",
    "items": _closed(
        {
            "sourceLabels": {"type": "array", "items": _STR},
            "separator": _STR,
            "targetLabel": _STR,
            "regex": _STR,
            "modulus": {"type": "integer"},
            "replacement": _STR,
            "action": {
                "enum": [
                    "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                    "lowercase", "uppercase", "keepequal", "dropequal",
                ]
            },
        }
    ),
}  # fmt: skip
_ENDPOINT = _closed(
    {
        "port": _STR,
        "path": _STR,
        "interval": _DURATION,
        "scrapeTimeout": _DURATION,
        "relabelings": _RELABELINGS,
        "metricRelabelings": _RELABELINGS,
    },
    ["port"],
)
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "alert": _STR,
        "record": _STR,
        "expr": _STR,
        "for": _DURATION,
        "labels": _LABELS,
        "annotations": _LABELS,
    },
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA, "spec": spec},
        ["apiVersion", "kind", "metadata", "spec"],
    )


CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        _closed(
            {
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "selector": _SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
            ["selector", "endpoints"],
        ),
    ),
    "PodMonitor": _resource(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        _closed(
            {
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "selector": _SELECTOR,
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
            ["selector", "podMetricsEndpoints"],
        ),
    ),
    "PrometheusRule": _resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        _closed(
            {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {"name": _STR, "interval": _DURATION, "rules": {"type": "array", "items": _RULE}},
                        ["name", "rules"],
                    ),
                }
            },
            ["groups"],
        ),
    ),
    "ScaledObject": _resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        _closed(
            {
                "scaleTargetRef": _closed(
                    {"name": _STR, "kind": _STR, "apiVersion": _STR, "envSourceContainerName": _STR}, ["name"]
                ),
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {
                            "type": {"const": "kafka"},
                            "metadata": {"type": "object", "additionalProperties": _STR},
                            "authenticationRef": _closed({"name": _STR, "kind": _STR}, ["name"]),
                        },
                        ["type", "metadata"],
                    ),
                },
            },
            ["scaleTargetRef", "triggers"],
        ),
    ),
    "TriggerAuthentication": _resource(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        _closed(
            {
                "secretTargetRef": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {"parameter": _STR, "name": _STR, "key": _STR}, ["parameter", "name", "key"]
                    ),
                }
            }
        ),
    ),
}

# Trigger metadata keys KEDA's Kafka scaler accepts (keda-docs, scalers/apache-kafka).
KAFKA_TRIGGER_KEYS = frozenset(
    {
        "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
        "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
        "limitToPartitionsWithLag", "partitionLimitation", "sasl", "tls", "version",
    }
)  # fmt: skip
KAFKA_TRIGGER_AUTH_PARAMS = frozenset(
    {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}
)
