{{/*
The connector's pod template, shared by the Deployment and (staticMembership.enabled) the StatefulSet.
*/}}
{{- define "attentive-connector.podTemplate" -}}
metadata:
  labels:
    {{- include "attentive-connector.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Edits to the config, rules or chart-made secrets roll the pods.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "attentive-connector.serviceAccountName" . }}
  automountServiceAccountToken: false
  # No <SERVICE>_PORT variables: a Service named "metrics" would otherwise set METRICS_PORT=tcp://...,
  # which the connector reads as its own setting.
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: connector
      image: {{ include "attentive-connector.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "{{ include "attentive-connector.configDir" . }}/connector.yaml"]
      ports:
        - name: http-metrics
          containerPort: {{ .Values.metricsPort }}
          protocol: TCP
      env:
        - name: ATTENTIVE_API_KEY_FILE
          value: {{ include "attentive-connector.apiKeyFile" . | quote }}
        {{- if .Values.staticMembership.enabled }}
        # Static membership: the StatefulSet's stable pod name is this member's group.instance.id.
        - name: KAFKA_GROUP_INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- if .Values.kafka.sasl.enabled }}
        - name: KAFKA_SASL_USERNAME
          valueFrom:
            secretKeyRef:
              name: {{ include "attentive-connector.saslSecretName" . }}
              key: {{ include "attentive-connector.saslUsernameKey" . }}
        - name: KAFKA_SASL_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "attentive-connector.saslSecretName" . }}
              key: {{ include "attentive-connector.saslPasswordKey" . }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.probes.startup }}
      {{- if .enabled }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http-metrics
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.liveness }}
      {{- if .enabled }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http-metrics
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.readiness }}
      {{- if .enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http-metrics
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
        successThreshold: {{ .successThreshold }}
      {{- end }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "attentive-connector.configDir" . }}
          readOnly: true
        - name: attentive-api-key
          mountPath: {{ dir (include "attentive-connector.apiKeyFile" .) }}
          readOnly: true
        {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
        - name: kafka-tls
          mountPath: {{ include "attentive-connector.tlsDir" . }}
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "attentive-connector.fullname" . }}
    - name: attentive-api-key
      secret:
        secretName: {{ include "attentive-connector.apiKeySecretName" . }}
        defaultMode: 0440
        items:
          - key: {{ include "attentive-connector.apiKeySecretKey" . }}
            path: {{ base (include "attentive-connector.apiKeyFile" .) }}
    {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
    - name: kafka-tls
      secret:
        secretName: {{ .Values.kafka.tls.existingSecret }}
        defaultMode: 0440
    {{- end }}
    - name: tmp
      emptyDir:
        {{- with .Values.tmpVolume.medium }}
        medium: {{ . }}
        {{- end }}
        sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  topologySpreadConstraints:
    {{- if .Values.topologySpreadConstraints }}
    {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
    {{- else }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "attentive-connector.selectorLabels" . | nindent 10 }}
    {{- end }}
{{- end }}
