{{- define "kar98k.name" -}}kar98k-operator{{- end -}}
{{- define "kar98k.fullname" -}}{{ printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "kar98k.labels" -}}
app.kubernetes.io/name: {{ include "kar98k.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kar98k
{{- end -}}
{{- define "kar98k.selector" -}}
app.kubernetes.io/name: {{ include "kar98k.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "kar98k.loadpodImage" -}}
{{- .Values.loadpod.image | default (printf "%s:%s" .Values.loadpod.repository (.Values.loadpod.tag | default .Chart.AppVersion)) -}}
{{- end -}}
{{/* Rules the operator needs on LoadTests and their children, in any namespace it serves: exactly
the calls it makes (tests/operator/test_rbac_least_privilege.py compares them with the API
server's audit log). */}}
{{- define "kar98k.namespacedRules" -}}
- apiGroups: ["kar98k.dev"]
  resources: ["loadtests"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["kar98k.dev"]
  resources: ["loadtests/status"]
  verbs: ["patch"]
- apiGroups: ["kar98k.dev"]
  resources: ["loadtestschedules"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["kar98k.dev"]
  resources: ["loadtestschedules/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if and .Values.peering.enabled (not .Values.watch.clusterWide) }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end -}}
{{/* Values that contradict each other fail the render with a message saying what to change. */}}
{{- define "kar98k.validate" -}}
{{- if and (not .Values.watch.clusterWide) (not .Values.watch.namespaces) }}
{{- fail "watch.clusterWide=false needs watch.namespaces: list the namespaces the operator serves (or set watch.clusterWide=true)" }}
{{- end }}
{{- if and .Values.watch.clusterWide .Values.watch.namespaces }}
{{- fail (printf "watch.namespaces=%v is ignored while watch.clusterWide=true: set watch.clusterWide=false to serve only those namespaces, or empty watch.namespaces" .Values.watch.namespaces) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount > 1 needs peering.enabled=true (kopf peering elects one active operator)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%v with replicaCount=%v would block every node drain: use a value below replicaCount" .Values.podDisruptionBudget.minAvailable .Values.replicaCount) }}
{{- end }}
{{- end -}}
