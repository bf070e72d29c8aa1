// Kubernetes objects as the API server would return them, for the test API server.
const LABELS = { 'app.kubernetes.io/name': 'traefik' };

export function pod(name: string, ips: string[], opts: { namespace?: string; phase?: string; labels?: Record<string, string>; terminating?: boolean } = {}) {
  return {
    metadata: {
      name,
      namespace: opts.namespace ?? 'traefik',
      uid: `uid-${name}`,
      labels: opts.labels ?? LABELS,
      ...(opts.terminating && { deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: 30 }),
    },
    spec: { containers: [{ name: 'traefik', image: 'traefik:v3' }] },
    status: {
      phase: opts.phase ?? (ips.length > 0 ? 'Running' : 'Pending'),
      ...(ips.length > 0 && { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) }),
    },
  };
}

export function node(name: string, opts: { podCIDRs?: string[]; addresses?: [string, string][]; labels?: Record<string, string> } = {}) {
  return {
    metadata: { name, uid: `uid-${name}`, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: { ...(opts.podCIDRs?.length && { podCIDR: opts.podCIDRs[0], podCIDRs: opts.podCIDRs }) },
    status: { addresses: (opts.addresses ?? []).map(([type, address]) => ({ type, address })) },
  };
}

export function endpointSlice(
  name: string,
  service: string,
  endpoints: { addresses: string[]; ready?: boolean; terminating?: boolean }[],
  opts: { namespace?: string; addressType?: string } = {},
) {
  return {
    metadata: {
      name,
      namespace: opts.namespace ?? 'traefik',
      uid: `uid-${name}`,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: opts.addressType ?? 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: e.addresses,
      conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: e.terminating ?? false },
    })),
    ports: [{ name: 'web', port: 8000, protocol: 'TCP' }],
  };
}
