{{/*
Naming and labels, after the prometheus-community and opentelemetry charts.
Every resource name starts with the release fullname, so two releases never collide.
*/}}

{{- define "perflab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "perflab.fullname" -}}
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

{{- define "perflab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's resources: <fullname>-<component>. Usage: include "perflab.componentName" (list $ "orders") */}}
{{- define "perflab.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "perflab.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name, instance and component only (they are immutable on Deployments). */}}
{{- define "perflab.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "perflab.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Full label set of a component's resources. Usage: include "perflab.labels" (list $ "orders") */}}
{{- define "perflab.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "perflab.chart" $root }}
{{ include "perflab.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: perflab
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/*
"Uses" labels: a pod labelled perflab/uses-<component>: "true" may open connections to that
component; the component's NetworkPolicy admits exactly those pods.
Usage: include "perflab.usesLabels" (list "postgresql" "kafka")
*/}}
{{- define "perflab.usesLabels" -}}
{{- range $i, $name := . }}
{{- if $i }}{{ "\n" }}{{ end }}perflab/uses-{{ $name }}: "true"
{{- end }}
{{- end }}

{{/* Image reference of a service: repository:tag, tag defaulting to the chart's appVersion. */}}
{{- define "perflab.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* The services that are switched on, as a sorted list of names. */}}
{{- define "perflab.enabledServices" -}}
{{- $names := list }}
{{- range $name, $svc := .Values.services }}
{{- if $svc.enabled }}{{ $names = append $names $name }}{{ end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
Dependencies of a service as the components it opens connections to: its dependsOn list,
plus jaeger when tracing is on.
*/}}
{{- define "perflab.serviceUses" -}}
{{- $root := index . 0 }}
{{- $svc := index . 1 }}
{{- $uses := $svc.dependsOn | default list }}
{{- if $root.Values.tracing.enabled }}{{ $uses = append $uses "jaeger" }}{{ end }}
{{- toJson (uniq $uses) }}
{{- end }}

{{/*
Where each dependency lives: host:port pairs clients connect to, and whether it runs in this
release (so NetworkPolicies can select its pods) or outside (egress by port only).
*/}}
{{- define "perflab.postgresql.host" -}}
{{- if .Values.postgresql.enabled }}{{ include "perflab.componentName" (list . "postgresql") }}{{ else }}{{ required "postgresql.external.host is required when postgresql.enabled=false" .Values.postgresql.external.host }}{{ end }}
{{- end }}

{{- define "perflab.postgresql.port" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.postgresql.external.port }}{{ end }}
{{- end }}

{{- define "perflab.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:6379/0" (include "perflab.componentName" (list . "redis")) }}
{{- else }}
{{- required "redis.external.url is required when redis.enabled=false" .Values.redis.external.url }}
{{- end }}
{{- end }}

{{- define "perflab.kafka.bootstrapServers" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s:9092" (include "perflab.componentName" (list . "kafka")) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.enabled=false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{- define "perflab.otlpEndpoint" -}}
{{- if .Values.jaeger.enabled }}
{{- printf "http://%s:%d" (include "perflab.componentName" (list . "jaeger")) (int .Values.jaeger.ports.otlpGrpc) }}
{{- else }}
{{- required "jaeger.external.otlpEndpoint is required when jaeger.enabled=false and tracing.enabled=true" .Values.jaeger.external.otlpEndpoint }}
{{- end }}
{{- end }}

{{/* host:port of a gRPC service of this chart. Usage: include "perflab.grpcAddr" (list $ "orders") */}}
{{- define "perflab.grpcAddr" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $svc := index $root.Values.services $name }}
{{- if not $svc.enabled }}{{ fail (printf "a component depends on %s, which is disabled or unknown" $name) }}{{ end }}
{{- printf "%s:%d" (include "perflab.componentName" (list $root $name)) (int $svc.ports.grpc) }}
{{- end }}

{{/*
The TCP endpoints each dependency answers on, as a JSON map
  component -> {"inCluster": bool, "ports": [int...], "hostPorts": ["host:port"...]}
Used for the wait-for init containers and the NetworkPolicies' egress rules.
*/}}
{{- define "perflab.dependencies" -}}
{{- $deps := dict }}
{{- $pgHost := include "perflab.postgresql.host" . }}
{{- $pgPort := include "perflab.postgresql.port" . | int }}
{{- $_ := set $deps "postgresql" (dict "inCluster" .Values.postgresql.enabled "ports" (list $pgPort) "hostPorts" (list (printf "%s:%d" $pgHost $pgPort))) }}
{{- $redis := urlParse (include "perflab.redis.url" .) }}
{{- $redisHostPort := $redis.host }}
{{- if not (contains ":" $redisHostPort) }}{{ $redisHostPort = printf "%s:6379" $redisHostPort }}{{ end }}
{{- $_ := set $deps "redis" (dict "inCluster" .Values.redis.enabled "ports" (list (last (splitList ":" $redisHostPort) | int)) "hostPorts" (list $redisHostPort)) }}
{{- $kafkaPorts := list }}
{{- $kafkaHostPorts := list }}
{{- range (splitList "," (include "perflab.kafka.bootstrapServers" .)) }}
{{- $hp := trim . }}
{{- $kafkaHostPorts = append $kafkaHostPorts $hp }}
{{- $kafkaPorts = append $kafkaPorts (last (splitList ":" $hp) | int) }}
{{- end }}
{{- $_ := set $deps "kafka" (dict "inCluster" .Values.kafka.enabled "ports" (uniq $kafkaPorts) "hostPorts" $kafkaHostPorts) }}
{{- if .Values.tracing.enabled }}
{{- $otlp := urlParse (include "perflab.otlpEndpoint" .) }}
{{- $otlpHostPort := $otlp.host }}
{{- if not (contains ":" $otlpHostPort) }}{{ $otlpHostPort = printf "%s:4317" $otlpHostPort }}{{ end }}
{{- $_ := set $deps "jaeger" (dict "inCluster" .Values.jaeger.enabled "ports" (list (last (splitList ":" $otlpHostPort) | int)) "hostPorts" (list $otlpHostPort)) }}
{{- end }}
{{- range $name, $svc := .Values.services }}
{{- if and $svc.enabled $svc.ports.grpc }}
{{- $_ := set $deps $name (dict "inCluster" true "ports" (list ($svc.ports.grpc | int)) "hostPorts" (list (include "perflab.grpcAddr" (list $ $name)))) }}
{{- end }}
{{- end }}
{{- if .Values.services.gateway.enabled }}
{{- $gw := .Values.services.gateway }}
{{- $_ := set $deps "gateway" (dict "inCluster" true "ports" (list ($gw.ports.http | int)) "hostPorts" (list (printf "%s:%d" (include "perflab.componentName" (list . "gateway")) (int $gw.ports.http)))) }}
{{- end }}
{{- toJson $deps }}
{{- end }}

{{/*
Environment of a service (everything but secrets), as a JSON map name -> string:
shared settings, the bind host and ports (so the process listens where the Service and probes
look), the addresses of its dependencies, then the service's own `env` values.
*/}}
{{- define "perflab.serviceEnv" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $svc := index $root.Values.services $name }}
{{- $env := dict "SERVICE_NAME" $name "LOG_LEVEL" $root.Values.logLevel "TRACING_ENABLED" (toString $root.Values.tracing.enabled) }}
{{- if $root.Values.tracing.enabled }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" (include "perflab.otlpEndpoint" $root) }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER" $root.Values.tracing.sampler }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER_ARG" (toString $root.Values.tracing.samplerArg) }}
{{- end }}
{{- range $svc.hostEnv }}{{ $_ := set $env . "0.0.0.0" }}{{ end }}
{{- range $port, $var := $svc.portEnv }}{{ $_ := set $env $var (toString (index $svc.ports $port)) }}{{ end }}
{{- range $svc.dependsOn }}
{{- if eq . "kafka" }}
{{- $_ := set $env "KAFKA_BOOTSTRAP_SERVERS" (include "perflab.kafka.bootstrapServers" $root) }}
{{- $_ := set $env "KAFKA_TOPIC_PREFIX" $root.Values.kafka.topicPrefix }}
{{- else if has . (list "orders" "payments") }}
{{- $_ := set $env (printf "%s_ADDR" (upper .)) (include "perflab.grpcAddr" (list $root .)) }}
{{- end }}
{{- end }}
{{- range $k, $v := $svc.env }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- toJson $env }}
{{- end }}

{{/* Secret environment of a service (connection strings with credentials), as a JSON map. */}}
{{- define "perflab.serviceSecretEnv" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $svc := index $root.Values.services $name }}
{{- $env := dict }}
{{- if has "postgresql" $svc.dependsOn }}
{{- $pg := $root.Values.postgresql }}
{{- $user := ternary $pg.auth.username $pg.external.username $pg.enabled }}
{{- $password := ternary $pg.auth.password $pg.external.password $pg.enabled }}
{{- $db := required (printf "services.%s.database is required: it depends on postgresql" $name) $svc.database }}
{{- $url := printf "postgresql+asyncpg://%s:%s@%s:%s/%s" (urlquery $user) (urlquery $password) (include "perflab.postgresql.host" $root) (include "perflab.postgresql.port" $root) $db }}
{{- if and (not $pg.enabled) $pg.external.params }}{{ $url = printf "%s?%s" $url $pg.external.params }}{{ end }}
{{- $_ := set $env "DATABASE_URL" $url }}
{{- end }}
{{- if has "redis" $svc.dependsOn }}
{{- range $svc.redisEnv | default (list "REDIS_URL") }}{{ $_ := set $env . (include "perflab.redis.url" $root) }}{{ end }}
{{- end }}
{{- toJson $env }}
{{- end }}

{{/* checksum/config of a service: changes whenever its ConfigMap or Secret does. */}}
{{- define "perflab.configChecksum" -}}
{{- printf "%s\n%s" (include "perflab.serviceEnv" .) (include "perflab.serviceSecretEnv" .) | sha256sum }}
{{- end }}

{{/* Pod-level security context shared by the services (and the jobs that run their images). */}}
{{- define "perflab.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup | default .runAsUser }}
fsGroup: {{ .fsGroup | default .runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security context: no privilege escalation, no capabilities. */}}
{{- define "perflab.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ . }}
capabilities:
  drop: [ALL]
{{- end }}

{{/*
An init container that waits until every host:port in the list accepts TCP connections, so a
pod waits for PostgreSQL or Kafka instead of crash-looping into a long back-off.
Usage: include "perflab.waitForContainer" (list $ image (list "host:port" ...))
*/}}
{{- define "perflab.waitForContainer" -}}
{{- $root := index . 0 -}}
- name: wait-for-dependencies
  image: {{ index . 1 }}
  imagePullPolicy: {{ $root.Values.imagePullPolicy }}
  command:
    - python
    - -c
    - |
      import os, socket, sys, time
      deadline = time.monotonic() + float(os.environ["WAIT_TIMEOUT_SECONDS"])
      for target in os.environ["WAIT_FOR"].split(","):
          host, port = target.rsplit(":", 1)
          while True:
              try:
                  socket.create_connection((host, int(port)), timeout=2).close()
                  print(f"{target} accepts connections", flush=True)
                  break
              except OSError as exc:
                  if time.monotonic() > deadline:
                      sys.exit(f"gave up waiting for {target}: {exc}")
                  print(f"waiting for {target}: {exc}", flush=True)
                  time.sleep(2)
  env:
    - name: WAIT_FOR
      value: {{ join "," (index . 2) | quote }}
    - name: WAIT_TIMEOUT_SECONDS
      value: {{ $root.Values.waitForDependencies.timeoutSeconds | quote }}
  resources:
    {{- toYaml $root.Values.waitForDependencies.resources | nindent 4 }}
  securityContext:
    {{- include "perflab.containerSecurityContext" true | nindent 4 }}
{{- end }}

{{/*
host:port targets a pod should wait for: the in-release infrastructure among its dependencies
(services of this chart are not waited for; their clients retry).
*/}}
{{- define "perflab.waitTargets" -}}
{{- $root := index . 0 }}
{{- $deps := include "perflab.dependencies" $root | fromJson }}
{{- $targets := list }}
{{- range (index . 1) }}
{{- $dep := index $deps . }}
{{- if and $dep $dep.inCluster (has . (list "postgresql" "kafka" "redis")) }}
{{- $targets = concat $targets $dep.hostPorts }}
{{- end }}
{{- end }}
{{- toJson $targets }}
{{- end }}
