{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "attentive-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: release-chart, unless the release name already contains the chart name. */}}
{{- define "attentive-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "attentive-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "attentive-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "attentive-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "attentive-connector.labels" -}}
helm.sh/chart: {{ include "attentive-connector.chart" . }}
{{ include "attentive-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: attentive-connector
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "attentive-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "attentive-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "attentive-connector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret with the Attentive API key: existingSecret, else <fullname>-attentive (made by the chart
when attentive.apiKey is set, otherwise expected to be created by the operator; see NOTES). */}}
{{- define "attentive-connector.apiKeySecretName" -}}
{{- default (printf "%s-attentive" (include "attentive-connector.fullname" .)) .Values.attentive.existingSecret }}
{{- end }}
{{- define "attentive-connector.apiKeySecretKey" -}}
{{- if .Values.attentive.existingSecret }}{{ .Values.attentive.existingSecretKey }}{{ else }}api-key{{ end }}
{{- end }}
{{- define "attentive-connector.createsApiKeySecret" -}}
{{- if and (not .Values.attentive.existingSecret) .Values.attentive.apiKey }}true{{ end }}
{{- end }}

{{/* The Secret with the Kafka SASL credentials. */}}
{{- define "attentive-connector.saslSecretName" -}}
{{- default (printf "%s-kafka-sasl" (include "attentive-connector.fullname" .)) .Values.kafka.sasl.existingSecret }}
{{- end }}
{{- define "attentive-connector.saslUsernameKey" -}}
{{- if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.usernameKey }}{{ else }}username{{ end }}
{{- end }}
{{- define "attentive-connector.saslPasswordKey" -}}
{{- if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.passwordKey }}{{ else }}password{{ end }}
{{- end }}
{{- define "attentive-connector.createsSaslSecret" -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) }}true{{ end }}
{{- end }}

{{- define "attentive-connector.configDir" -}}/etc/attentive-connector{{- end }}
{{- define "attentive-connector.apiKeyFile" -}}/var/run/secrets/attentive/api-key{{- end }}
{{- define "attentive-connector.tlsDir" -}}/var/run/secrets/kafka-tls{{- end }}

{{/* librdkafka security settings derived from kafka.sasl and kafka.tls. */}}
{{- define "attentive-connector.kafkaSecurity" -}}
{{- $sasl := .Values.kafka.sasl.enabled }}
{{- $tls := .Values.kafka.tls.enabled }}
{{- $out := dict }}
{{- if and $sasl $tls }}{{ $_ := set $out "security.protocol" "SASL_SSL" }}
{{- else if $sasl }}{{ $_ := set $out "security.protocol" "SASL_PLAINTEXT" }}
{{- else if $tls }}{{ $_ := set $out "security.protocol" "SSL" }}
{{- end }}
{{- if $sasl }}{{ $_ := set $out "sasl.mechanism" .Values.kafka.sasl.mechanism }}{{ end }}
{{- if and $tls .Values.kafka.tls.existingSecret }}
{{- $_ := set $out "ssl.ca.location" (printf "%s/%s" (include "attentive-connector.tlsDir" .) .Values.kafka.tls.caKey) }}
{{- if .Values.kafka.tls.certKey }}
{{- $_ := set $out "ssl.certificate.location" (printf "%s/%s" (include "attentive-connector.tlsDir" .) .Values.kafka.tls.certKey) }}
{{- $_ := set $out "ssl.key.location" (printf "%s/%s" (include "attentive-connector.tlsDir" .) .Values.kafka.tls.keyKey) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The connector.yaml the pod runs with: values.config plus what the chart manages (the API key file
comes in through ATTENTIVE_API_KEY_FILE, SASL credentials through KAFKA_SASL_USERNAME/PASSWORD). */}}
{{- define "attentive-connector.configFile" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $kafka := default dict $cfg.kafka }}
{{- $client := merge (fromYaml (include "attentive-connector.kafkaSecurity" .)) (default dict $kafka.client) }}
{{- if and .Values.staticMembership.enabled (not (hasKey $client "session.timeout.ms")) }}
{{- $_ := set $client "session.timeout.ms" (int .Values.staticMembership.sessionTimeoutMs) }}
{{- end }}
{{- $_ := set $kafka "client" $client }}
{{- $_ := set $cfg "kafka" $kafka }}
{{- $_ := set $cfg "metrics" (dict "port" (int .Values.metricsPort)) }}
{{- $_ := set $cfg "rules" (printf "%s/rules.yaml" (include "attentive-connector.configDir" .)) }}
{{- toYaml $cfg }}
{{- end }}

{{/* The workload the pods belong to: a StatefulSet (stable names) with static membership, else a Deployment. */}}
{{- define "attentive-connector.workloadKind" -}}
{{- if .Values.staticMembership.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{- define "attentive-connector.rulesFile" -}}
{{- if .Values.rules }}{{ .Values.rules }}{{ else }}{{ .Files.Get "files/rules.yaml" }}{{ end }}
{{- end }}

{{/* Drain time the pod needs before SIGKILL: the connector's shutdown grace. */}}
{{- define "attentive-connector.drainSeconds" -}}
{{- $delivery := default dict .Values.config.delivery }}
{{- default 25 $delivery.shutdown_grace_s }}
{{- end }}

{{/* Replica bounds with the autoscaler's maximum capped at the partition count. */}}
{{- define "attentive-connector.maxReplicas" -}}
{{- $max := 1 }}
{{- if .Values.autoscaling.keda.enabled }}{{ $max = .Values.autoscaling.keda.maxReplicas }}{{ else }}{{ $max = .Values.autoscaling.hpa.maxReplicas }}{{ end }}
{{- min (int $max) (int .Values.kafka.partitions) }}
{{- end }}

{{/* Replicas that can run at most: decides whether a PodDisruptionBudget is useful. */}}
{{- define "attentive-connector.minReplicas" -}}
{{- if .Values.autoscaling.keda.enabled }}{{ .Values.autoscaling.keda.minReplicas }}
{{- else if .Values.autoscaling.hpa.enabled }}{{ .Values.autoscaling.hpa.minReplicas }}
{{- else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Fail early on combinations the schema cannot express. */}}
{{- define "attentive-connector.validate" -}}
{{- if and .Values.autoscaling.hpa.enabled .Values.autoscaling.keda.enabled }}
{{- fail "autoscaling: enable either hpa or keda, not both (they would fight over the replica count)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- fail "metrics: enable either serviceMonitor or podMonitor, not both (every sample would be scraped twice)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs service.enabled (or use metrics.podMonitor)" }}
{{- end }}
{{- if and .Values.attentive.existingSecret .Values.attentive.apiKey }}
{{- fail "attentive: set existingSecret or apiKey, not both (the chart would ignore apiKey)" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) (or (not .Values.kafka.sasl.username) (not .Values.kafka.sasl.password)) }}
{{- fail "kafka.sasl: set existingSecret, or both username and password" }}
{{- end }}
{{- if and .Values.kafka.tls.certKey (not .Values.kafka.tls.keyKey) }}
{{- fail "kafka.tls: certKey needs keyKey (the client key for mutual TLS)" }}
{{- end }}
{{- if and (or .Values.kafka.tls.certKey .Values.kafka.tls.keyKey) (not .Values.kafka.tls.existingSecret) }}
{{- fail "kafka.tls: certKey/keyKey name keys of kafka.tls.existingSecret; set existingSecret" }}
{{- end }}
{{- if and .Values.priorityClass.create (not .Values.priorityClassName) }}
{{- fail "priorityClass.create needs priorityClassName (the name of the PriorityClass to create)" }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 (include "attentive-connector.drainSeconds" .)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.delivery.shutdown_grace_s (%v), or pods are killed mid-drain" .Values.terminationGracePeriodSeconds (include "attentive-connector.drainSeconds" .)) }}
{{- end }}
{{- end }}
