"""The chart against a real Kubernetes API server (etcd + kube-apiserver 1.37, see ``tests/ops/kube.py``).

Every rendering (defaults and each ``ci/`` file) passes strict server-side validation (OpenAPI types, unknown
fields, the real prometheus-operator and KEDA CRD schemas including their CEL rules) and installs, upgrades
and uninstalls with the project's helm. There is no controller-manager, scheduler or kubelet, so no pod ever
runs: instead each Deployment's pod template (and the ``helm test`` pod) is submitted as a Pod with
``--dry-run=server``, which runs the admission plugins a ReplicaSet's pods meet — Priority (the class must
exist) and PodSecurity (the namespaces enforce the ``restricted`` profile).
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import CHART, CI_VALUES, run_helm, template_args
from tests.ops.kube import KubeCluster

_NAMESPACES = itertools.count(1)
VALUES_CASES = [pytest.param(None, id="defaults")] + [pytest.param(p, id=p.stem) for p in CI_VALUES]
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def _files(values: Path | None) -> list[str]:
    return ["-f", str(values)] if values else []


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _create_namespace(kube: KubeCluster, name: str) -> None:
    labels = "\n".join(f"    {k}: {v}" for k, v in RESTRICTED.items())
    _ok(
        kube.kubectl(
            "apply",
            "-f",
            "-",
            stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n{labels}\n",
        )
    )


@pytest.fixture(scope="module")
def cluster(kube: KubeCluster) -> KubeCluster:
    """The API server with the namespaces the renderings use (crm, and monitoring for ci/05's dashboard)."""
    for ns in ("crm", "monitoring"):
        _create_namespace(kube, ns)
    return kube


def helm(kube: KubeCluster, helm_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_bin, *args], capture_output=True, text=True, check=False, timeout=180, env=kube.env()
    )


def server_apply(kube: KubeCluster, manifest: str) -> subprocess.CompletedProcess[str]:
    """Strict server-side validation: types, unknown and duplicate fields, CRD schemas, admission."""
    return kube.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=manifest)


def rendered_text(helm_bin: str, values: Path | None, *sets: str) -> str:
    return _ok(run_helm(helm_bin, *template_args([values] if values else [], list(sets), "rel")))


def admit_as_pod(kube: KubeCluster, namespace: str, name: str, template: dict[str, Any]) -> dict[str, Any]:
    """Submit a pod template as a Pod (dry run): what the ReplicaSet controller would create."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template.get("metadata", {}), "name": name, "namespace": namespace},
        "spec": template["spec"],
    }
    out = kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(pod))
    assert out.returncode == 0, f"pod {name} refused: {out.stderr}"
    assert "Warning" not in out.stderr, out.stderr
    admitted: dict[str, Any] = json.loads(out.stdout)
    return admitted


# -- strict server-side validation ----------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES_CASES)
def test_every_rendering_passes_strict_server_side_validation(
    cluster: KubeCluster, helm_bin: str, values: Path | None
) -> None:
    out = server_apply(cluster, rendered_text(helm_bin, values))
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr  # PodSecurity "would violate", deprecations, ...
    assert "(server dry run)" in out.stdout


def _edit(docs: list[dict[str, Any]], kind: str, change: Callable[[dict[str, Any]], None]) -> str:
    (doc,) = [d for d in docs if d["kind"] == kind]
    change(doc)
    return yaml.safe_dump_all(docs)


def _set_replicas(d: dict[str, Any]) -> None:
    d["spec"]["replicas"] = "3"


def _set_for(d: dict[str, Any]) -> None:
    d["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"


def _add_endpoint_field(d: dict[str, Any]) -> None:
    d["spec"]["endpoints"][0]["scrapeInterval"] = "15s"  # the field is called interval


def _set_polling(d: dict[str, Any]) -> None:
    d["spec"]["pollingInterval"] = "30s"


def _add_pod_field(d: dict[str, Any]) -> None:
    d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True


def _unknown_hpa_metric(d: dict[str, Any]) -> None:
    d["spec"]["metrics"][0]["type"] = "Cpu"


@pytest.mark.parametrize(
    ("values", "kind", "change", "complaint"),
    [
        (None, "Deployment", _set_replicas, "spec.replicas"),
        (None, "Deployment", _add_pod_field, 'unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem"'),
        ("04-hpa-monitoring-values.yaml", "PrometheusRule", _set_for, "spec.groups[0].rules[0].for"),
        ("04-hpa-monitoring-values.yaml", "ServiceMonitor", _add_endpoint_field, 'unknown field "spec.endpoints[0].scrapeInterval"'),
        ("04-hpa-monitoring-values.yaml", "HorizontalPodAutoscaler", _unknown_hpa_metric, "spec.metrics[0].type"),
        ("03-keda-values.yaml", "ScaledObject", _set_polling, "spec.pollingInterval"),
    ],
    ids=["string-replicas", "misspelt-pod-field", "bad-rule-for", "unknown-servicemonitor-field", "bad-hpa-metric", "string-keda-polling"],
)  # fmt: skip
def test_injected_errors_are_rejected_by_the_server(
    cluster: KubeCluster,
    helm_bin: str,
    values: str | None,
    kind: str,
    change: Callable[[dict[str, Any]], None],
    complaint: str,
) -> None:
    docs = [
        d for d in yaml.safe_load_all(rendered_text(helm_bin, CHART / "ci" / values if values else None)) if d
    ]
    out = server_apply(cluster, _edit(docs, kind, change))
    assert out.returncode != 0, f"the server accepted a broken {kind}:\n{out.stdout}"
    assert complaint in out.stderr, out.stderr


# -- install, upgrade, uninstall ------------------------------------------------------------------


@pytest.fixture
def namespace(cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower().removeprefix("test_"))
    name = f"it-{next(_NAMESPACES)}-{slug}"[:63].strip("-")
    _create_namespace(cluster, name)
    yield name
    _ok(cluster.kubectl("delete", "namespace", name, "--wait=false"))


def _stored(kube: KubeCluster, kind: str, namespace: str, release: str) -> list[dict[str, Any]]:
    out = _ok(
        kube.kubectl(
            "get", kind, "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "json"
        )
    )
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


@pytest.mark.parametrize("values", VALUES_CASES)
def test_install_upgrade_and_uninstall(
    cluster: KubeCluster, helm_bin: str, namespace: str, values: Path | None
) -> None:
    release = "shop"
    # No --kube-version: helm asks the server (v1.37.2) and checks the chart's kubeVersion against it.
    _ok(helm(cluster, helm_bin, "install", release, str(CHART), "-n", namespace, *_files(values)))
    (deployment,) = _stored(cluster, "deployment,statefulset", namespace, release)
    pod = admit_as_pod(cluster, namespace, "shop-check", deployment["spec"]["template"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    hooks = [
        d
        for d in yaml.safe_load_all(_ok(helm(cluster, helm_bin, "get", "hooks", release, "-n", namespace)))
        if d
    ]
    for hook in hooks:  # the `helm test` pod meets the same admission
        admit_as_pod(cluster, namespace, hook["metadata"]["name"], hook)

    _ok(
        helm(
            cluster,
            helm_bin,
            "upgrade",
            release,
            str(CHART),
            "-n",
            namespace,
            *_files(values),
            "--set",
            "podAnnotations.upgraded=yes",
        )
    )
    status = json.loads(_ok(helm(cluster, helm_bin, "status", release, "-n", namespace, "-o", "json")))
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    (deployment,) = _stored(cluster, "deployment,statefulset", namespace, release)
    assert deployment["spec"]["template"]["metadata"]["annotations"]["upgraded"] == "yes"

    _ok(helm(cluster, helm_bin, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s"))
    kinds = "deployment,statefulset,configmap,secret,service,serviceaccount,networkpolicy,poddisruptionbudget,horizontalpodautoscaler"
    assert _stored(cluster, kinds, namespace, release) == []
    for cr in ("servicemonitor", "podmonitor", "prometheusrule", "scaledobject", "triggerauthentication"):
        assert _stored(cluster, cr, namespace, release) == [], cr
    assert _stored(cluster, "configmap", "monitoring", release) == []  # ci/05's dashboard elsewhere
    assert _stored(cluster, "priorityclass", "", release) == []  # cluster-scoped, ci/04's


# -- PriorityClass --------------------------------------------------------------------------------


def test_a_pod_naming_a_missing_priority_class_is_refused(
    cluster: KubeCluster, helm_bin: str, namespace: str
) -> None:
    """Why the chart can create the class: without it the install succeeds and no pod ever appears."""
    _ok(
        helm(
            cluster,
            helm_bin,
            "install",
            "shop",
            str(CHART),
            "-n",
            namespace,
            "--set",
            "priorityClassName=business-critical-missing",
        )
    )
    (deployment,) = _stored(cluster, "deployment", namespace, "shop")
    out = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": deployment["spec"]["template"]["spec"]}),
    )  # fmt: skip
    assert out.returncode != 0
    assert "no PriorityClass with name business-critical-missing was found" in out.stderr
    notes = _ok(helm(cluster, helm_bin, "get", "notes", "shop", "-n", namespace))
    assert "PriorityClass business-critical-missing; it must exist" in notes
    _ok(helm(cluster, helm_bin, "uninstall", "shop", "-n", namespace))


def test_the_chart_creates_the_priority_class_the_pods_name(
    cluster: KubeCluster, helm_bin: str, namespace: str
) -> None:
    values = CHART / "ci" / "04-hpa-monitoring-values.yaml"
    _ok(
        helm(
            cluster,
            helm_bin,
            "install",
            "prio",
            str(CHART),
            "-n",
            namespace,
            "-f",
            str(values),
            "--set",
            "priorityClassName=prio-class",
        )
    )
    pc = json.loads(_ok(cluster.kubectl("get", "priorityclass", "prio-class", "-o", "json")))
    assert (pc["value"], pc.get("globalDefault", False), pc["preemptionPolicy"]) == (
        100000,
        False,
        "PreemptLowerPriority",
    )
    (deployment,) = _stored(cluster, "deployment", namespace, "prio")
    pod = admit_as_pod(cluster, namespace, "prio-check", deployment["spec"]["template"])
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == ("prio-class", 100000)
    notes = _ok(helm(cluster, helm_bin, "get", "notes", "prio", "-n", namespace))
    assert "it must exist" not in notes
    _ok(helm(cluster, helm_bin, "uninstall", "prio", "-n", namespace, "--wait", "--timeout", "60s"))
    assert cluster.kubectl("get", "priorityclass", "prio-class").returncode != 0


def test_creating_a_priority_class_needs_its_name(helm_bin: str) -> None:
    out = run_helm(helm_bin, *template_args([], ["priorityClass.create=true"], "rel"))
    assert out.returncode != 0
    assert "priorityClass.create needs priorityClassName" in out.stderr


def test_server_reports_the_stamped_version(cluster: KubeCluster) -> None:
    version = json.loads(_ok(cluster.kubectl("version", "-o", "json")))
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] != "v0.0.0-master"
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
