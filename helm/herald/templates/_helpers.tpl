{{/*
Names and labels.
*/}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
herald.worker: the effective settings of one worker, as YAML.
Call: include "herald.worker" (list $ "unread") | fromYaml
workerDefaults overridden by workers.<name>, key by key; maps one level deep
are merged key by key too. `set` is used rather than mergeOverwrite because
mergeOverwrite does not let false or 0 replace a default.
Adds: name, binary, fullname, kafka.group (defaulted).
*/}}
{{- define "herald.worker" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $cfg := index $root.Values.workers $name | default dict -}}
{{- $w := deepCopy $root.Values.workerDefaults -}}
{{- range $k, $v := $cfg -}}
{{- $cur := index $w $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- range $k2, $v2 := $v -}}
{{- $_ := set $cur $k2 $v2 -}}
{{- end -}}
{{- else -}}
{{- $_ := set $w $k $v -}}
{{- end -}}
{{- end -}}
{{- $_ := set $w "name" $name -}}
{{- $_ := set $w "binary" (default (printf "herald-%s" $name) $w.binary) -}}
{{- $_ := set $w "fullname" (printf "%s-%s" (include "herald.fullname" $root) $name | trunc 63 | trimSuffix "-") -}}
{{- $kafka := $w.kafka | default dict -}}
{{- $_ := set $kafka "group" (default (printf "herald-%s" $name) $kafka.group) -}}
{{- $_ := set $w "kafka" $kafka -}}
{{- toYaml $w -}}
{{- end -}}

{{/*
herald.envValue: one env value as a string. Whole floats (how Helm reads
YAML numbers) print without an exponent; other values print as they are.
*/}}
{{- define "herald.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
herald.env: the worker's environment as a YAML map of strings (the ConfigMap
data). Call: include "herald.env" (list $ $w) | fromYaml
Order of precedence: chart-set variables > workers.<name>.env > env.
Null and "" values are left out (the runtime treats an empty variable as
unset anyway).
*/}}
{{- define "herald.env" -}}
{{- $root := index . 0 -}}
{{- $w := index . 1 -}}
{{- $env := dict -}}
{{- range $k, $v := $root.Values.env -}}
{{- $_ := set $env $k $v -}}
{{- end -}}
{{- range $k, $v := ($w.env | default dict) -}}
{{- $_ := set $env $k $v -}}
{{- end -}}
{{- $_ := set $env "HERALD_KAFKA_GROUP" $w.kafka.group -}}
{{- if $w.kafka.topics -}}
{{- $_ := set $env "HERALD_KAFKA_TOPICS" (join "," $w.kafka.topics) -}}
{{- end -}}
{{- $_ := set $env "HERALD_METRICS_ADDR" (printf "0.0.0.0:%d" (int $root.Values.metrics.port)) -}}
{{- if $w.config -}}
{{- $_ := set $env "HERALD_CONFIG" "/etc/herald/config.json" -}}
{{- end -}}
{{- /* Settings taken from the Secret are left out here: NAME and NAME_FILE
       together are a configuration error, and env beats envFrom anyway. */ -}}
{{- /* Set from the pod name on StatefulSets, never from the ConfigMap. */ -}}
{{- $_ := unset $env "HERALD_INSTANCE_ID" -}}
{{- $ws := $w.secrets | default dict -}}
{{- range concat ($root.Values.secrets.files | default list) ($ws.files | default list) -}}
{{- $_ := unset $env (trimSuffix "_FILE" .env) -}}
{{- $_ := unset $env .env -}}
{{- end -}}
{{- range concat ($root.Values.secrets.env | default list) ($ws.env | default list) -}}
{{- $_ := unset $env .env -}}
{{- end -}}
{{- range $k := keys $env | sortAlpha -}}
{{- $v := index $env $k -}}
{{- if and (not (kindIs "invalid" $v)) (ne (toString $v) "") }}
{{ $k }}: {{ include "herald.envValue" $v | quote }}
{{- end -}}
{{- end -}}
{{- end -}}
