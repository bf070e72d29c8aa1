{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "tps.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The namespace of the release's objects (namespaceOverride, for umbrella charts). */}}
{{- define "tps.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* Prefix of every object name. */}}
{{- define "tps.fullname" -}}
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

{{- define "tps.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tps.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tps.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tps.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "tps.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tps.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tps.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tps.hmacSecretName" -}}
{{- $generated := printf "%s-hmac%s" (include "tps.fullname" .) (ternary "" (printf "-%s" (lower .Values.hmac.algorithm)) (eq .Values.hmac.algorithm "HS256")) -}}
{{- default $generated .Values.hmac.existingSecret -}}
{{- end -}}

{{- define "tps.stateClaimName" -}}
{{- default (printf "%s-state" (include "tps.fullname" .)) .Values.gateway.persistence.existingClaim -}}
{{- end -}}

{{- define "tps.sidecarImage" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) -}}
{{- end -}}

{{/*
The public URL, required at install and upgrade: it is the only allowed Origin. helm lint
renders outside any release, and there a stand-in origin lets it check the templates.
*/}}
{{- define "tps.publicUrl" -}}
{{- $url := .Values.publicUrl -}}
{{- if not $url -}}
{{- if or .Release.IsInstall .Release.IsUpgrade -}}
{{- fail "publicUrl is required: the gateway's public origin, e.g. --set publicUrl=https://claw.example.com" -}}
{{- end -}}
{{- $url = "https://publicurl-required.invalid" -}}
{{- end -}}
{{- if not (regexMatch "^https?://[^/?#]+$" $url) -}}
{{- fail (printf "publicUrl must be an origin such as https://claw.example.com (no path), got %q" $url) -}}
{{- end -}}
{{- $url -}}
{{- end -}}

{{- define "tps.publicHost" -}}
{{- (urlParse (include "tps.publicUrl" .)).host | splitList ":" | first -}}
{{- end -}}

{{- define "tps.configDir" -}}/etc/trusted-proxy-sidecar/config{{- end -}}
{{- define "tps.keysDir" -}}/etc/trusted-proxy-sidecar/keys{{- end -}}

{{/*
The sidecar's config file: the user's sidecar.config with the keys the pod layout fixes
(ports, upstream on loopback, key folder, allowed Origin) set by the chart.
*/}}
{{/*
The signing key is always named when the chart generated it, so adding a second key to
the Secret (the first step of a rotation) never leaves the sidecar without an active key.
*/}}
{{- define "tps.activeKeyId" -}}
{{- if .Values.hmac.activeKeyId -}}{{ .Values.hmac.activeKeyId }}
{{- else if not .Values.hmac.existingSecret -}}{{ .Values.hmac.generatedKeyId }}
{{- end -}}
{{- end -}}

{{/* The assertion keys the chart fixes: key folder, active key, algorithm and, for a key pair, the JWK Set file. */}}
{{- define "tps.assertionConfig" -}}
keysDir: {{ include "tps.keysDir" . }}
activeKeyId: {{ include "tps.activeKeyId" . | quote }}
{{- /* HS256 is the sidecar's default: left out, an upgrade of a default release changes nothing. */}}
{{- if ne .Values.hmac.algorithm "HS256" }}
algorithm: {{ .Values.hmac.algorithm }}
jwksFile: {{ .Values.hmac.jwksPath }}
{{- end }}
{{- end -}}

{{- define "tps.tlsDir" -}}/etc/trusted-proxy-sidecar/tls{{- end -}}

{{- define "tps.sidecarConfig" -}}
{{- $listen := dict "host" "0.0.0.0" "port" (int .Values.sidecar.ports.http) "allowedOrigins" (list (include "tps.publicUrl" .)) -}}
{{- with .Values.sidecar.tls }}
{{- if .secretName }}
{{- $_ := set $listen "certFile" (printf "%s/tls.crt" (include "tps.tlsDir" $)) -}}
{{- $_ := set $listen "keyFile" (printf "%s/tls.key" (include "tps.tlsDir" $)) -}}
{{- if .clientCA }}
{{- $_ := set $listen "clientCAFile" (printf "%s/ca.crt" (include "tps.tlsDir" $)) -}}
{{- end }}
{{- end }}
{{- end }}
{{- $fixed := dict
  "listen" $listen
  "admin" (dict "host" "0.0.0.0" "port" (int .Values.sidecar.ports.admin))
  "upstream" (dict "url" (printf "http://127.0.0.1:%d" (int .Values.gateway.port)))
  "assertion" (include "tps.assertionConfig" . | fromYaml)
-}}
{{- $user := deepCopy .Values.sidecar.config -}}
{{- $assertion := merge (dict) $fixed.assertion (default (dict) $user.assertion) -}}
{{- $config := merge (dict) (omit $fixed "assertion") (omit $user "assertion") -}}
{{- $_ := set $config "assertion" $assertion -}}
{{- toYaml $config -}}
{{- end -}}

{{/* True when any discovery source needs the Kubernetes API. */}}
{{- define "tps.discovery.enabled" -}}
{{- $d := .Values.sidecar.config.trust.discovery | default dict -}}
{{- if or (get (default dict $d.nodePodCIDRs) "enabled") (get (default dict $d.nodeAddresses) "enabled") $d.pods $d.endpointSlices -}}true{{- end -}}
{{- end -}}

{{- define "tps.discovery.nodes" -}}
{{- $d := .Values.sidecar.config.trust.discovery | default dict -}}
{{- if or (get (default dict $d.nodePodCIDRs) "enabled") (get (default dict $d.nodeAddresses) "enabled") -}}true{{- end -}}
{{- end -}}
