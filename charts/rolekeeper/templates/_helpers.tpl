{{/* Names and labels shared by every template. */}}

{{- define "rolekeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<name>, or the release name alone when it already contains the chart's name. */}}
{{- define "rolekeeper.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "rolekeeper.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The selector is exactly manifests/' (app.kubernetes.io/name), so a kustomize install can
be adopted by a release without replacing its Deployment (selectors are immutable). */}}
{{- define "rolekeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rolekeeper.name" . }}
{{- end }}

{{- define "rolekeeper.labels" -}}
{{ include "rolekeeper.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "rolekeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rolekeeper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rolekeeper.peeringName" -}}
{{- default (include "rolekeeper.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "rolekeeper.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "rolekeeper.webhookTLSSecret" -}}
{{- if .Values.webhook.certManager.enabled }}
{{- printf "%s-webhook-tls" (include "rolekeeper.fullname" .) }}
{{- else }}
{{- required "webhook.tls.secretName is required without cert-manager" .Values.webhook.tls.secretName }}
{{- end }}
{{- end }}
