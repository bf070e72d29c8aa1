{{- /*
The sidecar container: in initContainers with restartPolicy Always when sidecar.native (a
native sidecar), else beside the gateway in containers.
*/ -}}
{{- define "tps.sidecarContainer" -}}
- name: sidecar
  image: {{ include "tps.sidecarImage" . }}
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: [serve, --config, {{ include "tps.configDir" . }}/sidecar.yaml]
  {{- with .Values.sidecar.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.sidecar.ports.http }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.sidecar.ports.admin }}
      protocol: TCP
  {{- if .Values.sidecar.native }}
  # Serving before the gateway starts: /healthz, not /readyz, which asks the gateway.
  startupProbe:
    httpGet: { path: /healthz, port: admin }
    periodSeconds: 1
    failureThreshold: 60
  {{- end }}
  # Runs when the pod begins to stop, a native sidecar's too (before the gateway has
  # stopped): readiness fails, responses close their connections, and after
  # listen.drainSeconds the data port stops listening (docs/kubernetes.md, "Rollouts").
  lifecycle:
    preStop:
      exec:
        command: [/nodejs/bin/node, /app/dist/sidecar.js, drain, --config, {{ include "tps.configDir" . }}/sidecar.yaml]
  livenessProbe:
    httpGet: { path: /healthz, port: admin }
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  # Every second: when the pod stops, the failed readiness is what takes it out of the
  # Service's endpoints, and that must happen well within listen.drainSeconds (5 s).
  readinessProbe:
    httpGet: { path: /readyz, port: admin }
    periodSeconds: 1
    timeoutSeconds: 1
    failureThreshold: 2
  securityContext:
    {{- toYaml .Values.sidecar.securityContext | nindent 12 }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 12 }}
  volumeMounts:
    - name: sidecar-config
      mountPath: {{ include "tps.configDir" . }}
      readOnly: true
    - name: hmac-keys
      mountPath: {{ include "tps.keysDir" . }}
      readOnly: true
    {{- if .Values.sidecar.tls.secretName }}
    - name: tls
      mountPath: {{ include "tps.tlsDir" . }}
      readOnly: true
    {{- end }}
    {{- if ne .Values.hmac.algorithm "HS256" }}
    - name: jwks
      mountPath: {{ dir .Values.hmac.jwksPath }}
    {{- end }}
    {{- if include "tps.discovery.enabled" . }}
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
    {{- end }}
    {{- with .Values.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
