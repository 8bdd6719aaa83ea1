{{- define "skyshard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "skyshard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "skyshard.labels" -}}
app.kubernetes.io/name: {{ include "skyshard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "skyshard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skyshard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "skyshard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "skyshard.secretName" -}}
{{- default (printf "%s-secrets" (include "skyshard.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* A TOML value: strings quoted, whole numbers as integers (YAML gives floats), lists inline. */}}
{{- define "skyshard.tomlValue" -}}
{{- if kindIs "string" . -}}{{ . | quote }}
{{- else if kindIs "bool" . -}}{{ . }}
{{- else if kindIs "slice" . -}}[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "skyshard.tomlValue" $v }}{{ end }}]
{{- else if kindIs "float64" . -}}{{ if eq (float64 (int64 .)) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else -}}{{ . }}
{{- end -}}
{{- end -}}

{{/* A TOML table from a map: scalars, then sub-tables, then arrays of tables. */}}
{{- define "skyshard.tomlTable" -}}
{{- $path := .path -}}
{{- range $k, $v := .map }}
{{- $tables := and (kindIs "slice" $v) (gt (len $v) 0) (kindIs "map" (first $v)) }}
{{- if not (or (kindIs "map" $v) $tables) }}
{{ $k }} = {{ include "skyshard.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .map }}
{{- if kindIs "map" $v }}
{{- $p := ternary $k (printf "%s.%s" $path $k) (eq $path "") }}

[{{ $p }}]
{{- include "skyshard.tomlTable" (dict "path" $p "map" $v) }}
{{- end }}
{{- end }}
{{- range $k, $v := .map }}
{{- if and (kindIs "slice" $v) (gt (len $v) 0) (kindIs "map" (first $v)) }}
{{- range $v }}

[[{{ $k }}]]
{{- include "skyshard.tomlTable" (dict "path" $k "map" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The gateway's configuration: the values' config plus what the chart decides. */}}
{{- define "skyshard.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.ports.s3)) -}}
{{- $_ := set $cfg "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- $_ := set $cfg "data_dir" "/var/lib/skyshard" -}}
{{- $_ := set $cfg "master_key_file" "/etc/skyshard/secrets/master-key" -}}
{{- $_ := set $cfg "admin_token_file" "/etc/skyshard/secrets/admin-token" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.databaseUrl -}}
{{- $_ := set $cfg "database_url_file" "/etc/skyshard/secrets/database-url" -}}
{{- end -}}
{{- if .Values.tls.existingSecret -}}
{{- $_ := set $cfg "tls" (dict "cert_file" "/etc/skyshard/tls/tls.crt" "key_file" "/etc/skyshard/tls/tls.key") -}}
{{- end -}}
{{- if ne .Values.cache.type "none" -}}
{{- $path := ternary "/dev/skyshard-cache" "/var/cache/skyshard/cache.img" (eq .Values.cache.type "block") -}}
{{- $_ := set $cfg "cache" (dict "path" $path "size" (.Values.cache.size | replace "Gi" "G" | replace "Mi" "M" | replace "Ti" "T") "policy" .Values.cache.policy) -}}
{{- end -}}
# Rendered by the Helm chart from its values.
{{- include "skyshard.tomlTable" (dict "path" "" "map" $cfg) }}
{{- end -}}
