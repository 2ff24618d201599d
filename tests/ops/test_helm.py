"""The Helm chart: lint, offline schema validation of every rendering, security posture and wiring."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from connector.config import ConnectorConfig, EnvOverrides
from tests.ops.conftest import CHART, CI_VALUES, KUBE_VERSION, Rendered, run_helm
from tests.ops.crd_schemas import crd_schemas, kafka_trigger_auth_params, kafka_trigger_keys

Render = Callable[..., Rendered]
RenderError = Callable[..., str]

VALUES_CASES = [pytest.param(None, id="defaults")] + [pytest.param(p, id=p.stem) for p in CI_VALUES]
# Validated against the oldest Kubernetes the chart supports and the newest kubernetes-validate knows.
KUBE_VERSIONS = [KUBE_VERSION, kubernetes_validate.latest_version() + ".0"]


def _files(values: Path | None) -> list[Path]:
    return [values] if values else []


def test_ci_folder_exercises_the_options() -> None:
    assert len(CI_VALUES) >= 5
    blob = "\n".join(p.read_text() for p in CI_VALUES)
    for option in (
        "keda:",
        "hpa:",
        "serviceMonitor:",
        "podMonitor:",
        "prometheusRule:",
        "sasl:",
        "existingSecret",
        "priorityClass:",
        "staticMembership:",
    ):
        assert option in blob, f"no ci/ values file exercises {option}"


# -- lint and schema validation -------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES_CASES)
def test_helm_lint_strict(helm_bin: str, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for f in _files(values):
        args += ["-f", str(f)]
    out = run_helm(helm_bin, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", VALUES_CASES)
def test_every_rendered_manifest_is_valid_kubernetes(
    render: Render, crds: list[Path], values: Path | None
) -> None:
    """The fast offline check; tests/ops/test_kube.py submits the same renderings to a real API server."""
    rendered = render(_files(values))
    assert rendered.workload() and rendered.has("ConfigMap")
    schemas = crd_schemas()
    for doc in rendered.docs:
        kind = doc["kind"]
        if (doc["apiVersion"], kind) in schemas:
            try:
                jsonschema.validate(doc, schemas[(doc["apiVersion"], kind)])
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{kind}/{doc['metadata']['name']} invalid for its CRD: {exc.message}")
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{kind}/{doc['metadata']['name']} invalid for Kubernetes {version}: {exc.message}"
                )


def test_offline_crd_schemas_reject_a_misspelt_field_and_a_bad_duration(
    render: Render, crds: list[Path]
) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"])
    schemas = crd_schemas()
    sm = copy.deepcopy(rendered.one("ServiceMonitor"))
    sm["spec"]["endpoints"][0]["scrapeInterval"] = "15s"  # the field is called interval
    with pytest.raises(jsonschema.ValidationError, match="scrapeInterval"):
        jsonschema.validate(sm, schemas[("monitoring.coreos.com/v1", "ServiceMonitor")])
    rule = copy.deepcopy(rendered.one("PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError, match="ten minutes"):
        jsonschema.validate(rule, schemas[("monitoring.coreos.com/v1", "PrometheusRule")])


@pytest.mark.parametrize("values", VALUES_CASES)
def test_rendered_connector_config_is_accepted_by_the_app(render: Render, values: Path | None) -> None:
    rendered = render(_files(values))
    env = {e["name"]: e.get("value", "<from secret>") for e in rendered.container()["env"]}
    raw = EnvOverrides(**{k: v for k, v in env.items() if k in EnvOverrides.model_fields}).apply(
        rendered.connector_config()
    )
    config = ConnectorConfig.model_validate(raw)
    assert str(config.rules_file) == "/etc/attentive-connector/rules.yaml"
    assert config.metrics.port == 9400
    assert str(config.attentive.api_key_file) == "/var/run/secrets/attentive/api-key"
    assert config.attentive.api_key is None  # the key is only ever a mounted file
    rules = yaml.safe_load(rendered.one("ConfigMap", "connector")["data"]["rules.yaml"])
    assert isinstance(rules, dict) and "rules" in rules


def test_values_files_pass_the_values_schema_with_python_jsonschema_too() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(defaults)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCont=3", "replicaCont"),
        ("image.tgg=1.0", "tgg"),
        ("config.delivery.shutdown_grace=30", "shutdown_grace"),
        ("config.kafka.bootstrap_server=x:9092", "bootstrap_server"),
        ("affinity.nodeAfinity.x=1", "nodeAfinity"),
        ("prometheusRule.alerts.AttentiveConnectorStaled.enabled=true", "AttentiveConnectorStaled"),
        ("containerSecurityContext.readOnlyRootFilesytem=true", "readOnlyRootFilesytem"),
        ("autoscaling.keda.maxReplica=3", "maxReplica"),
    ],
)
def test_a_typo_in_any_key_fails_template_and_lint(
    helm_bin: str, render_error: RenderError, tmp_path: Path, setting: str, complaint: str
) -> None:
    err = render_error(set_values=[setting])
    assert "additional properties" in err and complaint in err
    # The same typo in a values file fails lint too.
    key, _, value = setting.partition("=")
    doc: dict[str, Any] = {}
    node = doc
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = yaml.safe_load(value)
    bad = tmp_path / "typo-values.yaml"
    bad.write_text(yaml.safe_dump(doc))
    out = run_helm(helm_bin, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(bad))
    assert out.returncode != 0
    assert complaint in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("config.attentive.api_key=sk-live", "api_key"),  # secrets never go into the ConfigMap
        ("config.kafka.client.sasl\\.password=hunter2", "sasl.password"),
        ("config.metrics.port=1", "metrics"),  # chart-managed
        ("kafka.sasl.mechanism=GSSAPI", "mechanism"),
        ("image.digest=latest", "digest"),
        ("config.delivery.unmatched=drop", "unmatched"),
        ("prometheusRule.alerts.AttentiveConnectorStalled.for=ten minutes", "for"),
    ],
)
def test_schema_rejects_bad_values(render_error: RenderError, setting: str, complaint: str) -> None:
    assert complaint in render_error(set_values=[setting])


# -- Deployment: security and lifecycle -------------------------------------------------------------


def _assert_restricted(pod_spec: dict[str, Any]) -> None:
    """The Kubernetes 'restricted' Pod Security Standard, plus read-only root and no SA token."""
    psc = pod_spec["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    # Service links would inject METRICS_PORT=tcp://... for a Service named "metrics" and break the config.
    assert pod_spec["enableServiceLinks"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod_spec.get(key)
    for volume in pod_spec.get("volumes", []):
        assert set(volume) - {"name"} <= {"configMap", "secret", "emptyDir", "projected"}, volume
    for c in pod_spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True
        assert sc.get("privileged", False) is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "limits" in c["resources"] and "memory" in c["resources"]["limits"]


@pytest.mark.parametrize("values", VALUES_CASES)
def test_every_pod_runs_under_the_restricted_profile(render: Render, values: Path | None) -> None:
    rendered = render(_files(values))
    pods = [rendered.deployment_pod()["spec"]] + [p["spec"] for p in rendered.all("Pod")]
    for spec in pods:
        _assert_restricted(spec)


def test_tmp_is_the_only_writable_mount(render: Render) -> None:
    rendered = render()
    pod = rendered.deployment_pod()["spec"]
    mounts = {m["mountPath"]: m for m in rendered.container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [path for path, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["sizeLimit"] == "64Mi"


def test_service_account_token_is_not_mounted(render: Render) -> None:
    rendered = render()
    assert rendered.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert rendered.deployment_pod()["spec"]["serviceAccountName"] == "rel-attentive-connector"


def test_command_probes_and_port(render: Render) -> None:
    c = render().container()
    assert c["args"] == ["run", "--config", "/etc/attentive-connector/connector.yaml"]
    assert "command" not in c  # the image's ENTRYPOINT is attentive-connector
    assert c["ports"] == [{"name": "http-metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}


def test_probes_can_be_disabled(render: Render) -> None:
    c = render(set_values=["probes.startup.enabled=false", "probes.liveness.enabled=false"]).container()
    assert "startupProbe" not in c and "livenessProbe" not in c and "readinessProbe" in c


def test_metrics_port_value_moves_every_reference(render: Render) -> None:
    rendered = render(set_values=["metricsPort=9500"])
    assert rendered.container()["ports"][0]["containerPort"] == 9500
    assert rendered.connector_config()["metrics"] == {"port": 9500}
    assert rendered.one("Service")["spec"]["ports"][0]["port"] == 9500
    assert ":9500" in rendered.one("Pod")["spec"]["containers"][0]["args"][0]


def test_termination_grace_exceeds_the_drain_time(render: Render, render_error: RenderError) -> None:
    rendered = render()
    grace = rendered.deployment_pod()["spec"]["terminationGracePeriodSeconds"]
    assert grace > rendered.connector_config()["delivery"]["shutdown_grace_s"] == 25
    err = render_error(set_values=["config.delivery.shutdown_grace_s=60"])
    assert "terminationGracePeriodSeconds (45) must exceed config.delivery.shutdown_grace_s (60)" in err
    ok = render(set_values=["config.delivery.shutdown_grace_s=60", "terminationGracePeriodSeconds=75"])
    assert ok.deployment_pod()["spec"]["terminationGracePeriodSeconds"] == 75


def test_rollout_keeps_capacity(render: Render) -> None:
    spec = render().one("Deployment")["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert spec["replicas"] == 2
    assert spec["minReadySeconds"] == 10


# -- config, rules and the checksum ---------------------------------------------------------------


def _checksum(rendered: Rendered) -> str:
    value: str = rendered.deployment_pod()["metadata"]["annotations"]["checksum/config"]
    return value


def test_checksum_changes_when_config_or_rules_change(render: Render) -> None:
    base = _checksum(render())
    assert len(base) == 64
    assert _checksum(render(set_values=["config.delivery.max_in_flight=32"])) != base
    assert _checksum(render(set_values=["rules=rules: []"])) != base
    assert _checksum(render(set_values=["extraConfigFiles.extra\\.avsc=x"])) != base
    # Settings that do not touch the ConfigMap leave it alone (no needless restarts).
    assert _checksum(render(set_values=["replicaCount=4"])) == base
    assert _checksum(render()) == base


def test_secret_checksum_tracks_the_chart_made_secret(render: Render) -> None:
    def secret_sum(*sets: str) -> str:
        value: str = render(set_values=list(sets)).deployment_pod()["metadata"]["annotations"][
            "checksum/secret"
        ]
        return value

    assert secret_sum("attentive.apiKey=one") != secret_sum("attentive.apiKey=two")


def test_default_rules_are_the_repository_rule_table(render: Render) -> None:
    rules = render().one("ConfigMap", "connector")["data"]["rules.yaml"]
    assert rules == (CHART.parent.parent / "config" / "rules.yaml").read_text()


def test_inline_rules_and_extra_files_replace_the_defaults(render: Render) -> None:
    ci = CHART / "ci" / "05-podmonitor-minimal-values.yaml"
    data = render([ci]).one("ConfigMap", "connector")["data"]
    assert data["rules.yaml"].startswith("# inline rule table")
    assert json.loads(data["signups.avsc"])["name"] == "SignupEvent"


def test_a_default_topic_can_be_removed_with_null(render: Render) -> None:
    topics = render(set_values=["config.topics.orders=null"]).connector_config()["topics"]
    assert sorted(topics) == ["loyalty", "privacy", "signups"]


# -- secrets --------------------------------------------------------------------------------------


def test_api_key_from_a_chart_made_secret_is_a_file_never_in_the_configmap(render: Render) -> None:
    rendered = render(set_values=["attentive.apiKey=sk-test-123456"])
    secret = rendered.one("Secret", "attentive")
    assert base64.b64decode(secret["data"]["api-key"]).decode() == "sk-test-123456"
    env = {e["name"]: e for e in rendered.container()["env"]}
    assert env["ATTENTIVE_API_KEY_FILE"]["value"] == "/var/run/secrets/attentive/api-key"
    assert "ATTENTIVE_API_KEY" not in env
    volume = next(v for v in rendered.deployment_pod()["spec"]["volumes"] if v["name"] == "attentive-api-key")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "api-key", "path": "api-key"}]
    for cm in rendered.all("ConfigMap"):
        assert "sk-test-123456" not in json.dumps(cm)


def test_existing_secret_is_mounted_and_no_secret_is_rendered(render: Render) -> None:
    rendered = render([CHART / "ci" / "02-secrets-sasl-tls-values.yaml"])
    assert not rendered.has("Secret")
    volume = next(v for v in rendered.deployment_pod()["spec"]["volumes"] if v["name"] == "attentive-api-key")
    assert volume["secret"]["secretName"] == "attentive-prod"
    assert volume["secret"]["items"] == [{"key": "token", "path": "api-key"}]


def test_api_key_and_existing_secret_together_is_an_error(render_error: RenderError) -> None:
    err = render_error(set_values=["attentive.apiKey=x", "attentive.existingSecret=y"])
    assert "set existingSecret or apiKey, not both" in err


def test_kafka_sasl_and_mutual_tls_from_existing_secrets(render: Render) -> None:
    rendered = render([CHART / "ci" / "02-secrets-sasl-tls-values.yaml"])
    client = rendered.connector_config()["kafka"]["client"]
    assert client == {
        "fetch.min.bytes": 1024,
        "session.timeout.ms": 45000,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.ca.location": "/var/run/secrets/kafka-tls/ca.crt",
        "ssl.certificate.location": "/var/run/secrets/kafka-tls/user.crt",
        "ssl.key.location": "/var/run/secrets/kafka-tls/user.key",
    }
    env = {e["name"]: e for e in rendered.container()["env"]}
    assert env["KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-user", "key": "user"}
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-user", "key": "pass"}
    mounts = {m["name"]: m for m in rendered.container()["volumeMounts"]}
    assert mounts["kafka-tls"] == {
        "name": "kafka-tls",
        "mountPath": "/var/run/secrets/kafka-tls",
        "readOnly": True,
    }


def test_chart_made_sasl_secret(render: Render) -> None:
    rendered = render([CHART / "ci" / "03-keda-values.yaml"])
    secret = rendered.one("Secret", "kafka-sasl")
    assert base64.b64decode(secret["data"]["password"]).decode() == "ci-not-a-real-password"
    assert rendered.connector_config()["kafka"]["client"] == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
    }
    assert "ci-not-a-real-password" not in json.dumps(rendered.all("ConfigMap"))


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["kafka.sasl.enabled=true"], "kafka.sasl: set existingSecret, or both username and password"),
        (["kafka.tls.enabled=true", "kafka.tls.certKey=c"], "certKey needs keyKey"),
        (["kafka.tls.enabled=true", "kafka.tls.certKey=c", "kafka.tls.keyKey=k"], "set existingSecret"),
    ],
)
def test_incomplete_kafka_security_is_an_error(
    render_error: RenderError, sets: list[str], complaint: str
) -> None:
    assert complaint in render_error(set_values=sets)


# -- scaling and disruption -----------------------------------------------------------------------


def test_pdb_only_when_more_than_one_replica(render: Render) -> None:
    assert render().one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert not render(set_values=["replicaCount=1"]).has("PodDisruptionBudget")
    assert not render(set_values=["podDisruptionBudget.enabled=false"]).has("PodDisruptionBudget")


def test_hpa_caps_replicas_at_the_partition_count(render: Render) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"], ["kafka.partitions=4"])
    hpa = rendered.one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 4)
    assert "replicas" not in rendered.one("Deployment")["spec"]
    assert not rendered.has("ScaledObject")


def test_keda_scales_on_group_lag_with_the_connectors_secrets(render: Render, crds: list[Path]) -> None:
    rendered = render([CHART / "ci" / "03-keda-values.yaml"])
    so = rendered.one("ScaledObject")["spec"]
    assert so["maxReplicaCount"] == 6  # 24 requested, 6 partitions
    assert so["minReplicaCount"] == 2
    (trigger,) = so["triggers"]
    meta = trigger["metadata"]
    assert set(meta) <= kafka_trigger_keys()  # what KEDA's Kafka scaler reads (its source)
    assert meta["bootstrapServers"] == "kafka:9092"
    assert meta["consumerGroup"] == "attentive-connector"
    assert (meta["sasl"], meta["tls"], meta["allowIdleConsumers"]) == ("scram_sha256", "enable", "false")
    auth = rendered.one("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) <= kafka_trigger_auth_params()
    assert refs["password"] == {
        "parameter": "password",
        "name": "rel-attentive-connector-kafka-sasl",
        "key": "password",
    }
    assert "replicas" not in rendered.one("Deployment")["spec"]
    assert not rendered.has("HorizontalPodAutoscaler")
    assert rendered.one("PodDisruptionBudget")


def test_priority_class_is_created_only_when_asked(render: Render) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"])
    pc = rendered.one("PriorityClass")
    assert (
        pc["metadata"]["name"]
        == rendered.deployment_pod()["spec"]["priorityClassName"]
        == "business-critical"
    )
    assert (pc["value"], pc["globalDefault"], pc["preemptionPolicy"]) == (
        100000,
        False,
        "PreemptLowerPriority",
    )
    named = render(set_values=["priorityClassName=platform-high"])
    assert named.deployment_pod()["spec"]["priorityClassName"] == "platform-high"
    assert not named.has("PriorityClass")  # the cluster's admins own it
    assert not render().has("PriorityClass")
    assert "priorityClassName" not in render().deployment_pod()["spec"]


def test_keda_without_kafka_auth_has_no_trigger_authentication(render: Render) -> None:
    rendered = render(set_values=["autoscaling.keda.enabled=true"])
    assert "authenticationRef" not in rendered.one("ScaledObject")["spec"]["triggers"][0]
    assert not rendered.has("TriggerAuthentication")
    assert not rendered.has("PodDisruptionBudget")  # keda.minReplicas defaults to 1


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["autoscaling.hpa.enabled=true", "autoscaling.keda.enabled=true"], "either hpa or keda"),
        (
            ["metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"],
            "serviceMonitor or podMonitor",
        ),
        (["metrics.serviceMonitor.enabled=true", "service.enabled=false"], "needs service.enabled"),
    ],
)
def test_conflicting_options_are_errors(render_error: RenderError, sets: list[str], complaint: str) -> None:
    assert complaint in render_error(set_values=sets)


# -- monitoring, dashboard, network, tests --------------------------------------------------------


def test_service_monitor_selects_the_service(render: Render) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"])
    sm = rendered.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"] == rendered.one("Service")["spec"]["selector"]
    assert sm["spec"]["endpoints"][0]["port"] == rendered.one("Service")["spec"]["ports"][0]["name"]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["crm"]}


def test_pod_monitor_without_service(render: Render) -> None:
    rendered = render([CHART / "ci" / "05-podmonitor-minimal-values.yaml"])
    pm = rendered.one("PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http-metrics"
    assert (
        pm["spec"]["selector"]["matchLabels"] == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert not rendered.has("Service") and not rendered.has("Pod")  # the helm test pod needs the Service


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar(render: Render) -> None:
    cm = render().one("ConfigMap", "dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = (CHART / "files" / "attentive-connector.json").read_text()
    assert json.loads(cm["data"]["attentive-connector.json"]) == json.loads(source)
    moved = render([CHART / "ci" / "05-podmonitor-minimal-values.yaml"]).one("ConfigMap", "dashboard")
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["annotations"] == {"grafana_folder": "Integrations"}
    # Disabled: only the connector's own ConfigMap is left.
    remaining = render(set_values=["grafanaDashboard.enabled=false"]).all("ConfigMap")
    assert [cm["metadata"]["name"] for cm in remaining] == ["rel-attentive-connector"]


def test_network_policy_allows_only_metrics_in_and_known_ports_out(render: Render) -> None:
    np = render().one("NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert np["ingress"] == [{"ports": [{"port": "http-metrics", "protocol": "TCP"}]}]
    ports = sorted(p["port"] for rule in np["egress"] for p in rule["ports"] if p["protocol"] == "TCP")
    assert ports == [53, 443, 8081, 9092, 9093, 9094]
    locked = render([CHART / "ci" / "05-podmonitor-minimal-values.yaml"]).one("NetworkPolicy")["spec"]
    assert locked["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert locked["egress"][-1]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert not render(set_values=["networkPolicy.enabled=false"]).has("NetworkPolicy")


def test_helm_test_pod_checks_readyz_and_metrics_and_is_not_selected(render: Render) -> None:
    rendered = render()
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://rel-attentive-connector.crm.svc:9400" in script
    assert '"/readyz"' in script and '"/metrics"' in script and "attentive_connector_build_info" in script
    compile(script, "helm-test", "exec")  # the check itself is valid Python
    selector = rendered.one("Service")["spec"]["selector"]
    labels = pod["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in selector.items())


def test_image_tag_defaults_to_app_version_and_digest_wins(render: Render) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (
        render().container()["image"]
        == f"ghcr.io/attentive-connector/attentive-connector:{chart['appVersion']}"
    )
    digest = render([CHART / "ci" / "02-secrets-sasl-tls-values.yaml"]).container()["image"]
    assert digest.endswith("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")


def test_names_and_labels(render: Render) -> None:
    rendered = render([CHART / "ci" / "04-hpa-monitoring-values.yaml"], release="attentive-connector")
    for doc in rendered.docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "attentive-connector"
        if doc["kind"] not in ("Pod", "PriorityClass"):  # the class's name is the user's choice
            assert doc["metadata"]["name"].startswith("attentive-connector")  # no "x-attentive-connector-..."
            assert labels["owner"] == "crm-platform"
    pod_meta = rendered.deployment_pod()["metadata"]
    assert pod_meta["labels"]["cost-center"] == "marketing"
    assert pod_meta["annotations"]["team"] == "crm"


def test_notes_render_with_warnings(helm_bin: str, tmp_path: Path) -> None:
    # `helm template` skips NOTES.txt and `helm install --dry-run` needs a cluster, so render the notes
    # through `tpl` on a copy of the chart (.Files cannot read templates/, hence the copy under files/).
    chart = tmp_path / "attentive-connector"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "notes-as-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "files/NOTES.txt") . | nindent 4 }}\n'
    )
    out = run_helm(
        helm_bin, "template", "rel", str(chart), "--kube-version", KUBE_VERSION,
        "--set", "image.tag=latest", "--set", "replicaCount=9", "--show-only", "templates/notes-as-configmap.yaml",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    notes = yaml.safe_load(out.stdout)["data"]["notes"]
    assert "kubectl -n default port-forward deploy/rel-attentive-connector 9400" in notes
    assert "create secret generic rel-attentive-connector-attentive --from-file=api-key=" in notes
    assert "9 replicas requested but kafka.partitions is 6" in notes
    assert "image tag latest is mutable" in notes


# -- static group membership: a StatefulSet -------------------------------------------------------


def test_static_membership_renders_a_statefulset_whose_pod_names_are_the_member_ids(render: Render) -> None:
    rendered = render(set_values=["staticMembership.enabled=true"])
    assert not rendered.has("Deployment")
    sts = rendered.one("StatefulSet")
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == sts["metadata"]["name"]
    assert sts["spec"]["replicas"] == 2
    env = {e["name"]: e for e in rendered.container()["env"]}
    assert env["KAFKA_GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The members' session outlasts a pod restart (documented default), unless kafka.client sets it.
    assert rendered.connector_config()["kafka"]["client"]["session.timeout.ms"] == 120000
    own = render(
        set_values=["staticMembership.enabled=true", "config.kafka.client.session\\.timeout\\.ms=300000"]
    )
    assert own.connector_config()["kafka"]["client"]["session.timeout.ms"] == 300000


def test_without_static_membership_the_pods_are_a_deployment_with_dynamic_member_ids(render: Render) -> None:
    rendered = render()
    assert not rendered.has("StatefulSet")
    assert "KAFKA_GROUP_INSTANCE_ID" not in {e["name"] for e in rendered.container()["env"]}
    assert "session.timeout.ms" not in rendered.connector_config()["kafka"]["client"]


def test_autoscalers_target_the_statefulset_with_static_membership(render: Render) -> None:
    hpa = render(set_values=["staticMembership.enabled=true", "autoscaling.hpa.enabled=true"])
    assert hpa.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert "replicas" not in hpa.one("StatefulSet")["spec"]
    keda = render(set_values=["staticMembership.enabled=true", "autoscaling.keda.enabled=true"])
    assert keda.one("ScaledObject")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_a_session_timeout_outside_the_brokers_bounds_fails_the_schema(helm_bin: str) -> None:
    out = run_helm(helm_bin, "template", "rel", str(CHART), "--set", "staticMembership.sessionTimeoutMs=1000")
    assert out.returncode != 0
    assert "sessionTimeoutMs" in out.stderr
