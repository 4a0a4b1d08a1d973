{{/*
Names, labels and shared snippets. Object names are truncated to 63 characters because
Kubernetes uses them as DNS labels (Services) and label values.
*/}}

{{- define "restlake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "restlake.fullname" -}}
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

{{- define "restlake.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kafka bootstrap as the pods see it: the configured one, else the Strimzi cluster of
     terraform/kind in the release namespace, qualified so every namespace resolves it. */}}
{{- define "restlake.kafkaBootstrap" -}}
{{- .Values.config.kafka.bootstrap | default (printf "%s-kafka-bootstrap.%s.svc:9092" .Values.config.kafka.cluster .Release.Namespace) }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "restlake.labels" -}}
helm.sh/chart: {{ include "restlake.chart" . }}
app.kubernetes.io/name: {{ include "restlake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: restlake
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "restlake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "restlake.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full labels of one component's objects. */}}
{{- define "restlake.componentLabels" -}}
{{ include "restlake.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "restlake.operator.fullname" -}}
{{- printf "%s-operator" (include "restlake.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "restlake.spark.masterName" -}}
{{- printf "%s-spark-master" (include "restlake.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "restlake.spark.workerName" -}}
{{- printf "%s-spark-worker" (include "restlake.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the standalone cluster's shared spark.authenticate secret. */}}
{{- define "restlake.spark.authSecretName" -}}
{{- default (printf "%s-spark-auth" (include "restlake.fullname" .) | trunc 63 | trimSuffix "-") .Values.spark.auth.existingSecret }}
{{- end }}

{{/* Env of the master and workers: the shared secret by reference (Spark reads
     _SPARK_AUTH_SECRET, and a worker passes it on to the executors it starts the same way) and
     the daemon options. The web UIs' kill links are unauthenticated POSTs, so they are off
     whatever auth says: the operator owns the drivers' lifecycle. */}}
{{- define "restlake.spark.daemonEnv" -}}
{{- if .Values.spark.auth.enabled }}
- name: _SPARK_AUTH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "restlake.spark.authSecretName" . }}
      key: {{ .Values.spark.auth.key }}
- name: SPARK_DAEMON_JAVA_OPTS
  value: "-Dspark.authenticate=true -Dspark.network.crypto.enabled=true -Dspark.ui.killEnabled=false"
{{- else }}
- name: SPARK_DAEMON_JAVA_OPTS
  value: "-Dspark.ui.killEnabled=false"
{{- end }}
{{- end }}

{{- define "restlake.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "restlake.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag" of a component image; call with (dict "ctx" $ "image" .Values.x.image). */}}
{{- define "restlake.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The master URL drivers and workers use. The operator derives the same URL from
     RESTLAKE_OPERATOR_RELEASE (<release>-spark-master), so that is set to the full name. */}}
{{- define "restlake.spark.masterUrl" -}}
{{- printf "spark://%s:%d" (include "restlake.spark.masterName" .) (int .Values.spark.master.port) }}
{{- end }}

{{/*
The operator's permissions, shared by the namespaced Role and the ClusterRole so the two
modes can never drift apart. Each verb is one restlake.operator or kopf exercises:
- IngestionSources and Backfills: kopf lists and watches them and patches its progress
  annotations and finalizers; status is patched through the subresource; `update` on
  finalizers is what owner references with blockOwnerDeletion require
  (OwnerReferencesPermissionEnforcement).
- What it renders per source (ConfigMap, fetcher Service, Deployments, KafkaTopic,
  ServiceMonitor, quality CronJob) and per Backfill (Job): server-side apply is a PATCH, and a
  PATCH that creates an object is also authorised as `create`; the status refresh reads them
  back with `get`. Owner references let the garbage collector delete them; the one deletion
  is the quality CronJob when its schedule is removed from the spec.
- Pods: `list` only, to read a finished backfill pod's termination message (its summary).
- Events (core/v1, as kopf posts them).
Optional APIs (Strimzi, Prometheus Operator) are detected through discovery, which needs no
rule. Peering rules are added by operator-rbac.yaml, per scope.
*/}}
{{- define "restlake.operator.rules" -}}
- apiGroups: [restlake.io]
  resources: [ingestionsources, backfills]
  verbs: [get, list, watch, patch]
- apiGroups: [restlake.io]
  resources: [ingestionsources/status, backfills/status]
  verbs: [patch]
- apiGroups: [restlake.io]
  resources: [ingestionsources/finalizers, backfills/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, services, serviceaccounts]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, patch]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- /* Only to read the restlake.io/source-credentials label of the Secrets a source refers to:
       the operator asks for metadata only (PartialObjectMetadata), but RBAC cannot grant less
       than get. */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [kafka.strimzi.io]
  resources: [kafkatopics]
  verbs: [get, create, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, create, patch]
{{- end }}

{{/* ServiceAccount of the Backfill Job and quality CronJob pods. */}}
{{- define "restlake.jobs.serviceAccountName" -}}
{{- default (printf "%s-jobs" (include "restlake.fullname" .) | trunc 63 | trimSuffix "-") .Values.jobs.serviceAccount.name }}
{{- end }}
