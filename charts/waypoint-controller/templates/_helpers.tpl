{{/*
fullname is the name of the release's namespaced and cluster-wide objects: the release's name
when it contains the chart's ("waypoint-controller" for `helm install waypoint-controller`),
else RELEASE-waypoint-controller; 63 characters at most.
*/}}
{{- define "waypoint-controller.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "waypoint-controller.serviceAccountName" -}}
{{- default (include "waypoint-controller.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* selectorLabels pick the controller's pods; they never change across upgrades. */}}
{{- define "waypoint-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "waypoint-controller.labels" -}}
{{ include "waypoint-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* image is the controller's image reference. */}}
{{- define "waypoint-controller.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* waypointImage is the waypoint's image reference, for both modes. */}}
{{- define "waypoint-controller.waypointImage" -}}
{{- printf "%s:%s" .Values.waypointImage.repository (.Values.waypointImage.tag | default .Chart.AppVersion) -}}
{{- end -}}
