"""Fixtures for the deployment artefacts: the helm and promtool binaries, chart rendering, and a real
Kubernetes API server (etcd + kube-apiserver, see :mod:`tests.ops.kube`) with the operators' real CRDs.

Tools come from ``$HELM`` / ``$PROMTOOL`` / ``$ETCD`` / ``$KUBE_APISERVER`` / ``$KUBECTL``, else the
Makefile's ``.cache/bin``, else PATH. When one is missing the tests that need it are skipped on a workstation
but FAIL under ``CI=true``: CI must never pass by not checking.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.crd_schemas import CRD_DIR, crd_files
from tests.ops.kube import KubeBinaries, KubeCluster
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
    return shutil.which(env.lower().replace("_", "-"))


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


@pytest.fixture(scope="session")
def kube_binaries() -> KubeBinaries:
    how = "run `make k8s` (ops/k8s/build.sh)"
    found = {
        env: _require(env, _find_tool(env, REPO / ".cache" / "bin" / env.lower().replace("_", "-")), how)
        for env in ("ETCD", "KUBE_APISERVER", "KUBECTL")
    }
    return KubeBinaries(etcd=found["ETCD"], kube_apiserver=found["KUBE_APISERVER"], kubectl=found["KUBECTL"])


@pytest.fixture(scope="session")
def crds() -> list[Path]:
    """The real prometheus-operator and KEDA CRD files (ops/k8s/build.sh puts them under .cache/k8s)."""
    files = crd_files()
    kinds = {yaml.safe_load(f.read_text())["spec"]["names"]["kind"] for f in files}
    missing = sorted(
        {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"} - kinds
    )
    if missing:
        _require("CRDS", None, f"run `make k8s` ({CRD_DIR} lacks {', '.join(missing)})")
    return files


@pytest.fixture(scope="session")
def kube(kube_binaries: KubeBinaries, crds: list[Path]) -> Iterator[KubeCluster]:
    """A running API server with the operators' CRDs installed and established; stopped at session end."""
    cluster = KubeCluster(kube_binaries)
    cluster.start()
    try:
        for f in crds:
            # Server-side apply: the biggest CRDs exceed the client-side last-applied annotation limit.
            out = cluster.kubectl("apply", "--server-side", "-f", str(f))
            assert out.returncode == 0, f"{f.name}: {out.stderr}"
        out = cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        assert out.returncode == 0, out.stderr
        yield cluster
    finally:
        cluster.stop()


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

    def workload(self) -> dict[str, Any]:
        """The Deployment, or the StatefulSet when ``staticMembership.enabled`` (exactly one of them)."""
        found = self.all("Deployment") + self.all("StatefulSet")
        assert len(found) == 1, [d["kind"] for d in found]
        return found[0]

    def deployment_pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.workload()["spec"]["template"]
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
