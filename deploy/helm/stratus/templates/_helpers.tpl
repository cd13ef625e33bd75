{{/*
Names and labels. One Deployment, Service and PodDisruptionBudget per role group:
<fullname>-<group>, labelled app.kubernetes.io/component=<group>.
*/}}
{{- define "stratus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stratus.fullname" -}}
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

{{- define "stratus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stratus.labels" -}}
helm.sh/chart: {{ include "stratus.chart" . }}
{{ include "stratus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stratus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stratus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* A group's object name. Args: (list $ groupName) */}}
{{- define "stratus.groupFullname" -}}
{{- $root := index . 0 }}{{ $name := index . 1 -}}
{{- printf "%s-%s" (include "stratus.fullname" $root | trunc 50 | trimSuffix "-") $name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A group's selector labels. Args: (list $ groupName) */}}
{{- define "stratus.groupSelectorLabels" -}}
{{- $root := index . 0 }}{{ $name := index . 1 -}}
{{ include "stratus.selectorLabels" $root }}
app.kubernetes.io/component: {{ $name }}
{{- end }}

{{- define "stratus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stratus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stratus.secretName" -}}
{{- default (include "stratus.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
Checks a group's settings; fails the render with what is wrong and how to fix it.
Args: (list groupName group)
*/}}
{{- define "stratus.checkGroup" -}}
{{- $name := index . 0 }}{{ $g := index . 1 -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "groups.%s: a group name must be a DNS label (lower-case letters, digits, -)" $name) }}
{{- end }}
{{- $command := default "run" $g.command }}
{{- if eq $command "run" }}
{{- if not $g.roles }}
{{- fail (printf "groups.%s.roles: name at least one of gateway, processor, forwarder, exporter, archiver" $name) }}
{{- end }}
{{- range $g.roles }}
{{- if not (has . (list "gateway" "processor" "forwarder" "exporter" "archiver")) }}
{{- fail (printf "groups.%s.roles: unknown role %q (stratus run --roles takes gateway, processor, forwarder, exporter, archiver)" $name .) }}
{{- end }}
{{- end }}
{{- else if eq $command "worker" }}
{{- if $g.roles }}
{{- fail (printf "groups.%s: command worker takes no roles (got %v)" $name $g.roles) }}
{{- end }}
{{- else }}
{{- fail (printf "groups.%s.command must be run or worker (got %q)" $name $command) }}
{{- end }}
{{- if and (dig "autoscaling" "enabled" false $g) (not (has "gateway" (default list $g.roles))) }}
{{- fail (printf "groups.%s.autoscaling: the HPA scales gateways; this group has no gateway role" $name) }}
{{- end }}
{{- end }}

{{/*
rssMaxMb (STRATUS_RSS_MAX_MB) of a group: its rssMaxMb if set, else 80% of resources.limits.memory
(Mi or Gi), so the engine refuses new work (RESOURCE_EXHAUSTED, OVERLOADED) before the container is
OOM-killed; 0 (no budget) without a memory limit. Args: (list groupName group)
*/}}
{{- define "stratus.rssMaxMb" -}}
{{- $name := index . 0 }}{{ $g := index . 1 -}}
{{- if hasKey $g "rssMaxMb" }}
{{- int $g.rssMaxMb }}
{{- else }}
{{- $mem := toString (dig "limits" "memory" "" (default dict $g.resources)) }}
{{- $mib := 0 }}
{{- if regexMatch "^[0-9]+Gi$" $mem }}
{{- $mib = mul (int (trimSuffix "Gi" $mem)) 1024 }}
{{- else if regexMatch "^[0-9]+Mi$" $mem }}
{{- $mib = int (trimSuffix "Mi" $mem) }}
{{- else if ne $mem "" }}
{{- fail (printf "groups.%s.resources.limits.memory %q: write it in Mi or Gi, or set groups.%s.rssMaxMb" $name $mem $name) }}
{{- end }}
{{- div (mul $mib 80) 100 }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds of a group: how long its drain may take, by the code's own bounds,
plus the preStop sleep and a margin, so the kubelet's SIGKILL never cuts a drain short:
  gateway    2 x gateway.drainGraceMs (open streams get drainGraceMs to settle their events, then
             events still waiting for room in the producer get as long again: src/gateway/gateway.ts
             stop()) + 1 s (forceShutdown of calls still open) + 20 s (producer flush and
             disconnect, 10 s each: src/kafka/producer.ts disconnect())
  processor  20 s (its producer's flush and disconnect)
  forwarder  5 s (the Redis call in hand: src/forwarder/forwarder.ts STOP_WAIT_MS)
  exporter   1 s (its blocking read: src/streams/exporter.ts READ_BLOCK_MS)
  archiver   10 s (the store write in hand, 5 s: src/archive/archiver.ts STOP_WAIT_MS; its consumer
             leaving the group, 5 s)
  worker     nothing bounded by the code (items in progress finish): the margin
With the defaults (drain 10 s, preStop 5 s, margin 10 s) a gateway gets 5 + 20 + 1 + 20 + 10 = 56 s.
Args: (list $ group)
*/}}
{{- define "stratus.terminationGracePeriodSeconds" -}}
{{- $root := index . 0 }}{{ $g := index . 1 -}}
{{- $drainS := div (add (int $root.Values.drain.graceMs) 999) 1000 }}
{{- $s := add (int $root.Values.drain.preStopSleepSeconds) (int $root.Values.drain.marginSeconds) }}
{{- $roles := default list $g.roles }}
{{- if has "gateway" $roles }}{{ $s = add $s (mul 2 $drainS) 1 20 }}{{ end }}
{{- if has "processor" $roles }}{{ $s = add $s 20 }}{{ end }}
{{- if has "forwarder" $roles }}{{ $s = add $s 5 }}{{ end }}
{{- if has "exporter" $roles }}{{ $s = add $s 1 }}{{ end }}
{{- if has "archiver" $roles }}{{ $s = add $s 10 }}{{ end }}
{{- $s }}
{{- end }}

{{/* STRATUS_* variables the chart sets from its own values, refused under config and secretConfig. */}}
{{- define "stratus.reservedEnv" -}}
{{- list "STRATUS_GRPC_HOST" "STRATUS_GRPC_PORT" "STRATUS_HTTP_PORT" "STRATUS_KAFKA_BROKERS" "STRATUS_REDIS_HOST" "STRATUS_REDIS_PORT" "STRATUS_REDIS_PASSWORD" "STRATUS_REDIS_MODE" "STRATUS_GATEWAY_DRAIN_GRACE_MS" "STRATUS_INSTANCE_ID" "STRATUS_RSS_MAX_MB" | toJson }}
{{- end }}

{{/* Checks config and secretConfig: STRATUS_* names only, none the chart sets itself. */}}
{{- define "stratus.checkConfig" -}}
{{- $reserved := include "stratus.reservedEnv" . | fromJsonArray }}
{{- range $section := list "config" "secretConfig" }}
{{- range $k, $v := (get $.Values $section | default dict) }}
{{- if not (regexMatch "^STRATUS_[A-Z0-9_]+$" $k) }}
{{- fail (printf "%s.%s: only STRATUS_* option variables go here (docs/configuration.md)" $section $k) }}
{{- end }}
{{- if has $k $reserved }}
{{- fail (printf "%s.%s is set by the chart from its own values (ports, kafka, redis, drain, groups.*.rssMaxMb): set it there" $section $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
