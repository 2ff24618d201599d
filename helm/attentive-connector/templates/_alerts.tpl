{{/*
The connector's alerting rules: the one definition behind both the PrometheusRule (templates/prometheusrule.yaml)
and the plain rules file ops/prometheus/alerts.yml (this template rendered with the default values by
`python ops/sync.py`; a test fails when the two drift). Thresholds, `for` and severity come from
.Values.prometheusRule.alerts. `{{ $labels.x }}` is Prometheus's templating, escaped from Helm's.
*/}}
{{- define "attentive-connector.alertGroups" -}}
{{- $a := .Values.prometheusRule.alerts }}
{{- $runbook := .Values.prometheusRule.runbookBaseUrl -}}
- name: attentive-connector.recording
  rules:
    # One value per partition even if two pods briefly both report it after a rebalance.
    - record: attentive_connector:consumer_lag:sum
      expr: sum by (namespace, topic) (max by (namespace, topic, partition) (attentive_connector_consumer_lag))
- name: attentive-connector.alerts
  rules:
    {{- with $a.AttentiveConnectorLagHighAndGrowing }}{{ if .enabled }}
    - alert: AttentiveConnectorLagHighAndGrowing
      expr: |-
        attentive_connector:consumer_lag:sum > {{ .threshold }}
        and
        deriv(attentive_connector:consumer_lag:sum[15m]) > 0
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Consumer lag on {{`{{ $labels.topic }}`}} is high and still growing
        description: >-
          {{`{{ $value }}`}} records behind on topic {{`{{ $labels.topic }}`}} in {{`{{ $labels.namespace }}`}}
          (threshold {{ .threshold }}) and the lag grew over the last 15 minutes: the connector cannot keep up.
        runbook_url: {{ $runbook }}#attentiveconnectorlaghighandgrowing
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorStalled }}{{ if .enabled }}
    - alert: AttentiveConnectorStalled
      expr: |-
        attentive_connector:consumer_lag:sum > 0
        unless on (namespace, topic)
        sum by (namespace, topic) (rate(attentive_connector_records_processed_total[10m])) > 0
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Connector stalled on {{`{{ $labels.topic }}`}}
        description: >-
          Topic {{`{{ $labels.topic }}`}} in {{`{{ $labels.namespace }}`}} has {{`{{ $value }}`}} records waiting
          but none was delivered, skipped or dead-lettered in the last 10 minutes.
        runbook_url: {{ $runbook }}#attentiveconnectorstalled
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorDeadLetters }}{{ if .enabled }}
    - alert: AttentiveConnectorDeadLetters
      # The second half counts series born inside the window (a pod's first dead letter), which
      # increase() cannot see.
      expr: |-
        sum by (namespace, topic, reason) (increase(attentive_connector_dlq_records_total[10m])) > {{ .threshold }}
        or
        sum by (namespace, topic, reason) (
          attentive_connector_dlq_records_total unless attentive_connector_dlq_records_total offset 10m
        ) > {{ .threshold }}
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Records dead-lettered from {{`{{ $labels.topic }}`}} ({{`{{ $labels.reason }}`}})
        description: >-
          {{`{{ $value }}`}} records from {{`{{ $labels.topic }}`}} in {{`{{ $labels.namespace }}`}} went to the
          dead-letter topic in the last 10 minutes with reason {{`{{ $labels.reason }}`}}. Inspect them and
          replay with `attentive-connector dlq replay` once fixed.
        runbook_url: {{ $runbook }}#attentiveconnectordeadletters
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorDeadLetterWriteFailing }}{{ if .enabled }}
    - alert: AttentiveConnectorDeadLetterWriteFailing
      expr: |-
        sum by (namespace, topic) (increase(attentive_connector_dlq_write_errors_total[5m])) > 0
        or
        sum by (namespace, topic) (
          attentive_connector_dlq_write_errors_total unless attentive_connector_dlq_write_errors_total offset 5m
        ) > 0
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Dead-letter writes failing for {{`{{ $labels.topic }}`}}
        description: >-
          The connector cannot write to the dead-letter topic of {{`{{ $labels.topic }}`}} in
          {{`{{ $labels.namespace }}`}}. It keeps retrying and holds the partition (nothing is lost or
          committed past it), so lag grows until the DLQ topic is writable again.
        runbook_url: {{ $runbook }}#attentiveconnectordeadletterwritefailing
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorApiErrorRatioHigh }}{{ if .enabled }}
    - alert: AttentiveConnectorApiErrorRatioHigh
      expr: |-
        sum by (namespace, endpoint) (rate(attentive_connector_api_requests_total{status_class=~"5xx|network"}[5m]))
        /
        sum by (namespace, endpoint) (rate(attentive_connector_api_requests_total[5m]))
        > {{ .threshold }}
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Attentive {{`{{ $labels.endpoint }}`}} failing ({{`{{ $value | humanizePercentage }}`}} 5xx/network)
        description: >-
          {{`{{ $value | humanizePercentage }}`}} of calls to Attentive's {{`{{ $labels.endpoint }}`}} in
          {{`{{ $labels.namespace }}`}} got a 5xx or a network error over 5 minutes (threshold
          {{ .threshold }}). Records are retried and held, not lost; lag will grow.
        runbook_url: {{ $runbook }}#attentiveconnectorapierrorratiohigh
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorAuthFailures }}{{ if .enabled }}
    - alert: AttentiveConnectorAuthFailures
      expr: |-
        sum by (namespace) (increase(attentive_connector_api_requests_total{status_class=~"401|403"}[5m])) > 0
        or
        sum by (namespace) (
          attentive_connector_api_requests_total{status_class=~"401|403"}
          unless attentive_connector_api_requests_total offset 5m
        ) > 0
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Attentive rejects the connector's API key
        description: >-
          Attentive answered 401/403 to the connector in {{`{{ $labels.namespace }}`}}: the key is wrong,
          revoked or lacks a scope. Delivery is paused until the key works again.
        runbook_url: {{ $runbook }}#attentiveconnectorauthfailures
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorNotReady }}{{ if .enabled }}
    - alert: AttentiveConnectorNotReady
      expr: attentive_connector_ready == 0
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: Connector pod {{`{{ $labels.pod }}`}} not ready
        description: >-
          {{`{{ $labels.pod }}`}} in {{`{{ $labels.namespace }}`}} has reported not ready for {{ .for }}: its
          /readyz lists why (API key rejected, Kafka unreachable, config not loaded).
        runbook_url: {{ $runbook }}#attentiveconnectornotready
    {{- end }}{{ end }}
    {{- with $a.AttentiveConnectorDown }}{{ if .enabled }}
    - alert: AttentiveConnectorDown
      expr: absent(up{job=~{{ $.Values.prometheusRule.jobRegex | quote }}} == 1)
      for: {{ .for }}
      labels:
        severity: {{ .severity }}
      annotations:
        summary: No attentive-connector target is up
        description: >-
          Prometheus has scraped no healthy connector (job matching {{ $.Values.prometheusRule.jobRegex }}) for
          {{ .for }}: nothing is being delivered to Attentive.
        runbook_url: {{ $runbook }}#attentiveconnectordown
    {{- end }}{{ end }}
{{- end }}
