{{/* Names and labels, as `helm create` writes them. */}}
{{- define "sgdrift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sgdrift.fullname" -}}
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

{{- define "sgdrift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sgdrift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sgdrift.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sgdrift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sgdrift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sgdrift.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the pod sees a secret key: each Secret is mounted in its own directory. */}}
{{- define "sgdrift.secretPath" -}}
{{- printf "/var/run/secrets/sgdrift/%s/%s" .name .key }}
{{- end }}

{{/* Every Secret named by a sink (slack, webhooks), once each, sorted. */}}
{{- define "sgdrift.secretNames" -}}
{{- $names := list }}
{{- range concat .Values.slack .Values.webhooks }}
{{- with .secret }}{{ $names = append $names .name }}{{ end }}
{{- end }}
{{- toJson ($names | uniq | sortAlpha) }}
{{- end }}

{{/*
The daemon's config as a dict: .Values.config, plus what the chart decides (the listen address
the probes and Service use, the state file on the state volume) and the sinks with their
secret files. Rendered to TOML by sgdrift.toml.table.
*/}}
{{- define "sgdrift.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := merge (dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPort))) ($config.server | default dict) }}
{{- $_ := set $config "server" $server }}
{{- $alerts := merge (dict "state_file" "/var/lib/sgdrift/state.json") ($config.alerts | default dict) }}
{{- $slack := $alerts.slack | default list }}
{{- range .Values.slack }}
{{- $sink := omit . "secret" }}
{{- with .secret }}{{ $_ := set $sink "webhook_url_file" (include "sgdrift.secretPath" .) }}{{ end }}
{{- $slack = append $slack $sink }}
{{- end }}
{{- $webhooks := $alerts.webhook | default list }}
{{- range .Values.webhooks }}
{{- $sink := omit . "secret" }}
{{- with .secret }}{{ $_ := set $sink "url_file" (include "sgdrift.secretPath" .) }}{{ end }}
{{- $webhooks = append $webhooks $sink }}
{{- end }}
{{- if $slack }}{{ $_ := set $alerts "slack" $slack }}{{ end }}
{{- if $webhooks }}{{ $_ := set $alerts "webhook" $webhooks }}{{ end }}
{{- $_ := set $config "alerts" $alerts }}
{{- toJson $config }}
{{- end }}

{{/*
A small TOML writer for the config dict. Helm's own toToml writes every number from values as
a float (8.0), which the daemon's integer keys reject; this one writes whole numbers as
integers, maps below the top level as inline tables, and lists of maps as [[arrays]] of tables.
*/}}
{{- define "sgdrift.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "sgdrift.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}{{ if not (kindIs "map" .) }}{{ $all = false }}{{ end }}{{ end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{- define "sgdrift.toml.value" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ . }}
{{- else if kindIs "float64" . }}{{ if eq (floor .) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) }}{{ . }}
{{- else if kindIs "slice" . }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "sgdrift.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" . }}{ {{- $first := true }}
{{- range $k, $v := . }}{{ if not (kindIs "invalid" $v) }}{{ if not $first }},{{ end }} {{ include "sgdrift.toml.key" $k }} = {{ include "sgdrift.toml.value" $v }}{{ $first = false }}{{ end }}{{ end }} }
{{- else }}{{ fail (printf "config: cannot write %v (%s) as TOML" . (kindOf .)) }}
{{- end }}
{{- end }}

{{/* A table at .path ("" for the document): its plain keys, then its sub-tables. */}}
{{- define "sgdrift.toml.table" -}}
{{- $path := .path }}
{{- range $k, $v := .table }}
{{- $nested := or (and (eq $path "") (kindIs "map" $v)) (include "sgdrift.toml.isTableArray" $v) }}
{{- if and (not (kindIs "invalid" $v)) (not $nested) }}
{{ include "sgdrift.toml.key" $k }} = {{ include "sgdrift.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- $name := ternary $k (printf "%s.%s" $path $k) (eq $path "") }}
{{- if and (eq $path "") (kindIs "map" $v) $v }}

[{{ $name }}]
{{- include "sgdrift.toml.table" (dict "path" $name "table" $v) }}
{{- else if include "sgdrift.toml.isTableArray" $v }}
{{- range $v }}

[[{{ $name }}]]
{{- include "sgdrift.toml.table" (dict "path" $name "table" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
