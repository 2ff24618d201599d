"""The operators' real CRDs, for the custom resources the chart renders (kubernetes-validate ships none).

``ops/k8s/build.sh`` puts them under ``.cache/k8s/crds/``: prometheus-operator's ``monitoring.coreos.com/v1``
CRDs generated with controller-gen from its ``pkg/apis/monitoring`` module, and KEDA's published CRDs from
its module zip. The same files are installed into the test API server (``tests/ops/test_kube.py``); here
their ``openAPIV3Schema`` serves as an offline JSON-schema check, closed with ``additionalProperties: false``
wherever the CRD lists its fields, so a misspelt field fails here as it fails strict server-side validation
(the API server itself would silently prune it without ``--validate=strict``). CEL rules
(``x-kubernetes-validations``) are only checked by the API server.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

CRD_DIR = REPO / ".cache" / "k8s" / "crds"
KEDA_SOURCE_DIR = CRD_DIR.parent / "keda-source"


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*/*.yaml"))


def _closed(node: Any) -> Any:
    """A copy of a structural schema where every object that lists its properties accepts no others."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: (v if k == "x-kubernetes-validations" else _closed(v)) for k, v in node.items()}
    pattern = node.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern and not pattern.startswith("(?i)"):
        # Go allows inline flags mid-pattern ("^(?i)(abort|warn)?$"); Python only at the start.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if "properties" in node:
        out["properties"] = {name: _closed(sub) for name, sub in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` → the closed JSON schema of that served version, for every cached CRD."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in crd_files():
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = _closed(schema)
    return schemas


def _keda_keys(order: str) -> frozenset[str]:
    """The ``keda:"name=…, order=…"`` parameter names KEDA's Kafka scaler reads (its own source)."""
    source = (KEDA_SOURCE_DIR / "kafka_scaler.go").read_text(encoding="utf-8")
    keys: set[str] = set()
    for tag in re.findall(r'keda:"([^"]*)"', source):
        fields = dict(f.strip().partition("=")[::2] for f in tag.split(","))
        if order in fields.get("order", "").split(";"):
            keys.update(fields.get("name", "").split(";"))
    return frozenset(k for k in keys if k)


def kafka_trigger_keys() -> frozenset[str]:
    """Trigger metadata keys KEDA's Kafka scaler accepts."""
    return _keda_keys("triggerMetadata")


def kafka_trigger_auth_params() -> frozenset[str]:
    """TriggerAuthentication parameters KEDA's Kafka scaler reads."""
    return _keda_keys("authParams")
