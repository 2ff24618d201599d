"""Fixtures for the deployment artefacts: the helm and promtool binaries, and chart rendering.

Tools come from ``$HELM`` / ``$PROMTOOL``, else the Makefile's ``.cache/bin``, else PATH. When one is
missing the tests that need it are skipped on a workstation but FAIL under ``CI=true``: CI must never pass
by not checking.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO

CHART = REPO / "helm" / "attentive-connector"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
KUBE_VERSION = "1.30.0"  # Chart.yaml's kubeVersion floor


def _find_tool(env: str, *candidates: Path) -> str | None:
    explicit = os.environ.get(env)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return shutil.which(env.lower())


def _require(env: str, found: str | None, how: str) -> str:
    if found:
        return found
    message = f"{env.lower()} not found (set {env}=/path or {how})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI must run these checks", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return _require("HELM", _find_tool("HELM", REPO / ".cache" / "bin" / "helm"), "run `make helm`")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return _require(
        "PROMTOOL", _find_tool("PROMTOOL", REPO / ".cache" / "bin" / "promtool"), "run `make promtool`"
    )


class Rendered:
    """The documents of one ``helm template`` run, looked up by kind (and name)."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [d for d in self.all(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, got {[d['metadata'] for d in found]}"
        )
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    def deployment_pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]
        return spec

    def container(self) -> dict[str, Any]:
        containers = self.deployment_pod()["spec"]["containers"]
        assert len(containers) == 1
        c: dict[str, Any] = containers[0]
        return c

    def connector_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = yaml.safe_load(self.one("ConfigMap", "connector")["data"]["connector.yaml"])
        return cfg


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Callable[..., Rendered]:
    """``render(values_files=(), set_values=(), release="rel")``: ``helm template`` parsed, or AssertionError."""

    def _render(
        values_files: Sequence[Path] = (), set_values: Sequence[str] = (), release: str = "rel"
    ) -> Rendered:
        out = run_helm(helm_bin, *template_args(values_files, set_values, release))
        assert out.returncode == 0, out.stderr
        return Rendered([d for d in yaml.safe_load_all(out.stdout) if d])

    return _render


@pytest.fixture(scope="session")
def render_error(helm_bin: str) -> Callable[..., str]:
    """Like ``render`` but expects failure and returns helm's error output."""

    def _render_error(values_files: Sequence[Path] = (), set_values: Sequence[str] = ()) -> str:
        out = run_helm(helm_bin, *template_args(values_files, set_values, "rel"))
        assert out.returncode != 0, f"helm template unexpectedly succeeded:\n{out.stdout[:2000]}"
        return out.stderr

    return _render_error


def template_args(values_files: Sequence[Path], set_values: Sequence[str], release: str) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", "crm", "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["-f", str(f)]
    for s in set_values:
        args += ["--set", s]
    return args
