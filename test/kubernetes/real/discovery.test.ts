// Discovery against a real Kubernetes API server, through the real client and the sidecar's
// in-cluster path with a ServiceAccount's token: pods, EndpointSlices and nodes created,
// relabelled, made not ready and deleted through the API; a watch that expires after real
// compaction relists; RBAC and token problems give the documented readiness problems; a
// rotated token is used at once; KUBECONFIG outside a cluster; no API contact until a
// source is configured. Faults a real server will not make on demand (429, 500, stalls,
// streams cut mid-event, bookmarks at will) stay with the wire-level double in test/kubernetes/fake/.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomId } from '../../../src/assertion/sign.js';
import { decide } from '../../../src/decision/decide.js';
import { decisionContext } from '../../../src/runtime/snapshot.js';
import { sample, scrape } from '../../support/metrics.js';
import { startKubeCluster, type KubeCluster } from '../../../harness/kube-cluster.js';
import { startSidecar, type TestSidecar } from '../../support/sidecar.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../../harness/upstream.js';
import { waitFor } from '../../../harness/wait.js';
import { configSchema, type ConfigInput } from '../../../src/config/schema.js';
import { mergeGatewayConfig } from '../../../src/openclaw/gateway-config.js';
import { COMMAND } from '../../support/command.js';

const execFileAsync = promisify(execFile);

type Discovery = NonNullable<NonNullable<ConfigInput['trust']>['discovery']>;

/** Fast informer timings: backoff and idle timeouts in seconds, not minutes. */
const TIMING = {
  backoffBaseMs: 50,
  backoffMaxMs: 400,
  pageSize: 2,
  listTimeoutMs: 5000,
  watchHeadTimeoutMs: 2000,
  watchIdleTimeoutMs: 10_000,
  watchTimeoutSeconds: 60,
};
/** How long a change in the API may take to reach the trusted set (docs/kubernetes.md). */
const FOLLOW_MS = 5000;

let cluster: KubeCluster;
let upstream: RecordingUpstream;

beforeAll(async () => {
  // Compaction every second, and watches served from storage rather than the watch cache,
  // so that an old resourceVersion really is compacted away.
  cluster = await startKubeCluster({ compactionSeconds: 1, watchCache: false });
  upstream = await startRecordingUpstream();
  for (const ns of ['traefik', 'openclaw', 'elsewhere']) await cluster.namespace(ns);
  // The sidecar's ServiceAccount, and the rules the chart grants it.
  await cluster.call('POST', '/api/v1/namespaces/openclaw/serviceaccounts', { metadata: { name: 'sidecar' } });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/traefik/roles', {
    metadata: { name: 'sidecar-discovery' },
    rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ],
  });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/traefik/rolebindings', {
    metadata: { name: 'sidecar-discovery' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sidecar-discovery' },
    subjects: [{ kind: 'ServiceAccount', name: 'sidecar', namespace: 'openclaw' }],
  });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    metadata: { name: 'sidecar-nodes' },
    rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] }],
  });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    metadata: { name: 'sidecar-nodes' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sidecar-nodes' },
    subjects: [{ kind: 'ServiceAccount', name: 'sidecar', namespace: 'openclaw' }],
  });
  // A ServiceAccount with no rules at all.
  await cluster.call('POST', '/api/v1/namespaces/openclaw/serviceaccounts', { metadata: { name: 'unbound' } });
}, 120_000);
afterAll(async () => {
  await upstream?.close();
  await cluster?.stop();
});

async function sidecarWith(discovery: Discovery, env: Record<string, string>): Promise<TestSidecar> {
  return startSidecar(upstream.url, { trust: { discovery } }, { discovery: { env, timing: TIMING } });
}

const trustedBy = (sc: TestSidecar, ip: string) => {
  const r = sc.sidecar.runtime.snapshot.trusted.lookup(ip);
  return r.trusted ? r.sources : false;
};
const waitTrusted = (sc: TestSidecar, ip: string) => waitFor(() => trustedBy(sc, ip), `${ip} trusted`, FOLLOW_MS);
const waitUntrusted = (sc: TestSidecar, ip: string) => waitFor(() => trustedBy(sc, ip) === false, `${ip} untrusted`, FOLLOW_MS);
const readiness = async (sc: TestSidecar) => {
  const res = await fetch(`${sc.adminUrl}/readyz`);
  return { status: res.status, problems: ((await res.json()) as { problems: string[] }).problems };
};
const waitReady = (sc: TestSidecar) => waitFor(async () => (await readiness(sc)).status === 200, 'the sidecar ready', 15_000);

// ------------------------------------------------------------------ objects, as a kubelet and controllers would make them

async function createPod(name: string, labels: Record<string, string>, namespace = 'traefik', nodeName?: string): Promise<void> {
  await cluster.call('POST', `/api/v1/namespaces/${namespace}/pods`, {
    metadata: { name, labels },
    spec: { containers: [{ name: 'proxy', image: 'traefik:v3' }], ...(nodeName && { nodeName }), terminationGracePeriodSeconds: 30 },
  });
}

async function runPod(name: string, ips: string[], namespace = 'traefik'): Promise<void> {
  await cluster.call(
    'PATCH',
    `/api/v1/namespaces/${namespace}/pods/${name}/status`,
    { status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } },
    'application/merge-patch+json',
  );
}

const TRAEFIK = { 'app.kubernetes.io/name': 'traefik' };

describe('pods by namespace and label', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await sidecarWith(
      { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] },
      await cluster.inCluster('openclaw', 'sidecar'),
    );
    await waitReady(sc);
  });
  afterAll(() => sc.stop());

  test('pods already running are trusted at the first sync, over several list pages', async () => {
    // A sidecar of its own, started after five pods run: its first list takes three pages of 2.
    for (let i = 1; i <= 5; i++) {
      await createPod(`paged-${i}`, { app: 'paged' });
      await runPod(`paged-${i}`, [`10.1.1.${i}`]);
    }
    const paged = await sidecarWith({ pods: [{ namespace: 'traefik', labelSelector: 'app=paged' }] }, await cluster.inCluster('openclaw', 'sidecar'));
    try {
      await waitReady(paged);
      for (let i = 1; i <= 5; i++) expect(trustedBy(paged, `10.1.1.${i}`)).toEqual(['pods:traefik/app=paged']);
      // A request from an address no source trusts is refused; the reason names every source
      // checked (static: the test's own loopback entries).
      const refused = decide(
        { mode: 'inline', peer: '10.1.1.77', tls: false, method: 'GET', target: '/', rawHeaders: ['Host', 'x', 'X-Auth-Request-Email', 'a@example.com'] },
        decisionContext(paged.sidecar.runtime.snapshot, Date.now(), randomId),
      );
      expect(refused).toMatchObject({
        ok: false,
        reason: 'untrusted_source',
        detail: 'not_in_trusted_set: no match in static (2 entries), pods:traefik/app=paged (5 entries)',
      });
    } finally {
      await paged.stop();
    }
  });

  test('a pod is trusted once it runs with an IP, and only a selected one in the watched namespace', async () => {
    await createPod('traefik-a', TRAEFIK);
    await createPod('other-app', { app: 'other' });
    await createPod('traefik-elsewhere', TRAEFIK, 'elsewhere');
    await runPod('other-app', ['10.1.0.9']);
    await runPod('traefik-elsewhere', ['10.1.0.8'], 'elsewhere');
    expect(trustedBy(sc, '10.1.0.1')).toBe(false);
    await runPod('traefik-a', ['10.1.0.1', 'fd00:1::1']);
    expect(await waitTrusted(sc, '10.1.0.1')).toEqual(['pods:traefik/app.kubernetes.io/name=traefik']);
    expect(trustedBy(sc, 'fd00:1::1')).not.toBe(false);
    expect(trustedBy(sc, '10.1.0.9')).toBe(false);
    expect(trustedBy(sc, '10.1.0.8')).toBe(false);
    // And a request from it is allowed by the real source, not a stand-in.
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_trusted_set_size', { source: 'pods:traefik/app.kubernetes.io/name=traefik' })).toBe(2);
  });

  test('relabelled out of the selector: untrusted; back in: trusted again', async () => {
    await createPod('traefik-b', TRAEFIK);
    await runPod('traefik-b', ['10.1.0.2']);
    await waitTrusted(sc, '10.1.0.2');
    await cluster.call(
      'PATCH',
      '/api/v1/namespaces/traefik/pods/traefik-b',
      { metadata: { labels: { 'app.kubernetes.io/name': 'not-traefik' } } },
      'application/merge-patch+json',
    );
    await waitUntrusted(sc, '10.1.0.2');
    await cluster.call('PATCH', '/api/v1/namespaces/traefik/pods/traefik-b', { metadata: { labels: TRAEFIK } }, 'application/merge-patch+json');
    await waitTrusted(sc, '10.1.0.2');
  });

  test('terminating (deleted on a node, its grace period running): untrusted at once; gone: untrusted', async () => {
    await cluster.call('POST', '/api/v1/nodes', { metadata: { name: 'node-for-pods' } });
    await createPod('traefik-c', TRAEFIK, 'traefik', 'node-for-pods');
    await runPod('traefik-c', ['10.1.0.3']);
    await waitTrusted(sc, '10.1.0.3');
    // Bound to a node, a deleted pod waits for its kubelet: it stays, with a deletionTimestamp.
    await cluster.call('DELETE', '/api/v1/namespaces/traefik/pods/traefik-c');
    expect((await cluster.call('GET', '/api/v1/namespaces/traefik/pods/traefik-c')).metadata.deletionTimestamp).toBeDefined();
    await waitUntrusted(sc, '10.1.0.3');
    await createPod('traefik-d', TRAEFIK);
    await runPod('traefik-d', ['10.1.0.4']);
    await waitTrusted(sc, '10.1.0.4');
    await cluster.call('DELETE', '/api/v1/namespaces/traefik/pods/traefik-d?gracePeriodSeconds=0');
    await waitUntrusted(sc, '10.1.0.4');
  });

  test('a pod that fails (phase Failed) is no longer trusted', async () => {
    await createPod('traefik-e', TRAEFIK);
    await runPod('traefik-e', ['10.1.0.5']);
    await waitTrusted(sc, '10.1.0.5');
    await cluster.call('PATCH', '/api/v1/namespaces/traefik/pods/traefik-e/status', { status: { phase: 'Failed' } }, 'application/merge-patch+json');
    await waitUntrusted(sc, '10.1.0.5');
  });
});

describe('EndpointSlices of a Service', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await sidecarWith({ endpointSlices: [{ namespace: 'traefik', service: 'traefik' }] }, await cluster.inCluster('openclaw', 'sidecar'));
    await waitReady(sc);
  });
  afterAll(() => sc.stop());

  const slice = (name: string, service: string, endpoints: { ip: string; ready: boolean }[]) => ({
    metadata: { name, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready, serving: e.ready, terminating: false } })),
    ports: [{ name: 'web', port: 8000, protocol: 'TCP' }],
  });
  const path = '/apis/discovery.k8s.io/v1/namespaces/traefik/endpointslices';

  test('ready, non-terminating endpoints of the named Service are trusted; IPv6 too; FQDN and other Services never', async () => {
    await cluster.call(
      'POST',
      path,
      slice('traefik-abc', 'traefik', [
        { ip: '10.2.0.1', ready: true },
        { ip: '10.2.0.2', ready: false },
      ]),
    );
    await cluster.call('POST', path, { ...slice('traefik-v6', 'traefik', [{ ip: 'fd00:2::1', ready: true }]), addressType: 'IPv6' });
    await cluster.call('POST', path, { ...slice('traefik-fqdn', 'traefik', [{ ip: 'proxy.example.com', ready: true }]), addressType: 'FQDN' });
    await cluster.call('POST', path, slice('other-abc', 'other', [{ ip: '10.2.0.9', ready: true }]));
    await waitTrusted(sc, '10.2.0.1');
    await waitTrusted(sc, 'fd00:2::1');
    expect(trustedBy(sc, '10.2.0.2')).toBe(false);
    expect(trustedBy(sc, '10.2.0.9')).toBe(false);
    // The not-ready endpoint turns ready; the ready one starts terminating.
    const current = (await cluster.call('GET', `${path}/traefik-abc`)).metadata;
    await cluster.call('PUT', `${path}/traefik-abc`, {
      ...slice('traefik-abc', 'traefik', [{ ip: '10.2.0.2', ready: true }]),
      metadata: current,
      endpoints: [
        { addresses: ['10.2.0.1'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.2.0.2'], conditions: { ready: true, serving: true, terminating: false } },
      ],
    });
    await waitTrusted(sc, '10.2.0.2');
    await waitUntrusted(sc, '10.2.0.1');
    await cluster.call('DELETE', `${path}/traefik-v6`);
    await waitUntrusted(sc, 'fd00:2::1');
    await cluster.call('DELETE', `${path}/traefik-abc`);
    await waitUntrusted(sc, '10.2.0.2');
  });
});

describe('nodes: pod CIDRs and addresses', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await sidecarWith(
      {
        nodePodCIDRs: { enabled: true, nodeSelector: 'pool=ingress' },
        nodeAddresses: { enabled: true, types: ['InternalIP', 'Hostname'] },
        endpointSlices: [{ namespace: 'traefik', service: 'shared' }],
      },
      await cluster.inCluster('openclaw', 'sidecar'),
    );
    await waitReady(sc);
  });
  afterAll(() => sc.stop());

  const node = (name: string, labels: Record<string, string>, podCIDRs?: string[]) => ({
    metadata: { name, labels },
    spec: podCIDRs ? { podCIDR: podCIDRs[0], podCIDRs } : {},
  });
  const addresses = (name: string, list: [string, string][]) =>
    cluster.call(
      'PATCH',
      `/api/v1/nodes/${name}/status`,
      { status: { addresses: list.map(([type, address]) => ({ type, address })) } },
      'application/merge-patch+json',
    );

  test('pod CIDRs of the selected nodes, added when a node gets one and removed with the node', async () => {
    await cluster.call('POST', '/api/v1/nodes', node('worker-1', { pool: 'ingress' }, ['10.244.1.0/24', 'fd00:244:1::/64']));
    await cluster.call('POST', '/api/v1/nodes', node('worker-2', { pool: 'batch' }, ['10.244.2.0/24']));
    await waitTrusted(sc, '10.244.1.77');
    expect(trustedBy(sc, 'fd00:244:1::9')).toEqual(['nodePodCIDRs:pool=ingress']);
    expect(trustedBy(sc, '10.244.2.77')).toBe(false);
    // A node registers first and is given its CIDR afterwards, as the node IPAM controller does.
    await cluster.call('POST', '/api/v1/nodes', node('worker-3', { pool: 'ingress' }));
    await cluster.call('PATCH', '/api/v1/nodes/worker-3', { spec: { podCIDR: '10.244.3.0/24', podCIDRs: ['10.244.3.0/24'] } }, 'application/merge-patch+json');
    await waitTrusted(sc, '10.244.3.1');
    await cluster.call('DELETE', '/api/v1/nodes/worker-1');
    await waitUntrusted(sc, '10.244.1.77');
    expect(trustedBy(sc, 'fd00:244:1::9')).toBe(false);
    expect(trustedBy(sc, '10.244.3.1')).toEqual(['nodePodCIDRs:pool=ingress']);
  });

  test('node addresses of the configured types; an address change follows; DNS names are never trusted', async () => {
    await cluster.call('POST', '/api/v1/nodes', node('edge-1', {}));
    await addresses('edge-1', [
      ['InternalIP', '192.0.2.11'],
      ['ExternalIP', '203.0.113.11'],
      ['Hostname', 'edge-1'],
    ]);
    await waitTrusted(sc, '192.0.2.11');
    expect(trustedBy(sc, '203.0.113.11')).toBe(false);
    await addresses('edge-1', [
      ['InternalIP', '192.0.2.12'],
      ['Hostname', 'edge-1'],
    ]);
    await waitTrusted(sc, '192.0.2.12');
    await waitUntrusted(sc, '192.0.2.11');
    // Only the one address: a Hostname is a name, never an entry.
    expect(sc.sidecar.runtime.snapshot.trusted.sizeBySource.get('nodeAddresses')).toBe(1);
    await cluster.call('DELETE', '/api/v1/nodes/edge-1');
    await waitUntrusted(sc, '192.0.2.12');
  });

  test('several sources together: an address trusted by two names both', async () => {
    await cluster.call('POST', '/api/v1/nodes', node('worker-9', { pool: 'ingress' }, ['10.244.9.0/24']));
    await cluster.call('POST', '/apis/discovery.k8s.io/v1/namespaces/traefik/endpointslices', {
      metadata: { name: 'shared-abc', labels: { 'kubernetes.io/service-name': 'shared' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.9.5'], conditions: { ready: true } }],
    });
    await waitFor(() => (trustedBy(sc, '10.244.9.5') || []).length === 2, 'trusted by both');
    expect(trustedBy(sc, '10.244.9.5')).toEqual(['endpointSlices:traefik/shared', 'nodePodCIDRs:pool=ingress']);
    expect(trustedBy(sc, '10.244.9.6')).toEqual(['nodePodCIDRs:pool=ingress']);
  });
});

test('a ServiceAccount without the Role: the documented 403 readiness problem, and nothing trusted', async () => {
  const sc = await sidecarWith(
    { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] },
    await cluster.inCluster('openclaw', 'unbound'),
  );
  try {
    const problems = await waitFor(
      async () => {
        const r = await readiness(sc);
        return r.problems.some((p) => p.includes('forbidden')) && r.problems;
      },
      'the 403 problem',
      10_000,
    );
    expect(problems.join('\n')).toContain(
      'pods:traefik/app.kubernetes.io/name=traefik: not synced: forbidden (403) by RBAC: the service account needs list and watch on pods in namespace traefik (a Role)',
    );
    // The API server's own words follow, naming the real ServiceAccount.
    expect(problems.join('\n')).toContain('system:serviceaccount:openclaw:unbound');
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_discovery_errors_total', { kind: 'forbidden' })).toBeGreaterThan(0);
  } finally {
    await sc.stop();
  }
});

test('a watch whose resourceVersion was compacted away gets 410 Gone and relists, missing nothing', async () => {
  const proxy: TcpProxy = await startTcpProxy(cluster.port);
  const env = { ...(await cluster.inCluster('openclaw', 'sidecar')), KUBERNETES_SERVICE_PORT: String(proxy.port) };
  const sc = await sidecarWith({ pods: [{ namespace: 'traefik', labelSelector: 'app=compaction' }] }, env);
  try {
    await waitReady(sc);
    const source = 'pods:traefik/app=compaction';
    const listed = (await cluster.call('GET', '/api/v1/namespaces/traefik/pods?labelSelector=app%3Dcompaction')).metadata.resourceVersion as string;
    // The sidecar loses the API; meanwhile a proxy pod starts and the storage compacts
    // past every revision the sidecar has seen.
    const acceptedBeforeCut = proxy.accepted;
    proxy.cut();
    await createPod('compaction-1', { app: 'compaction' });
    await runPod('compaction-1', ['10.3.0.1']);
    await waitFor(
      async () => {
        const r = await cluster.request(
          'GET',
          `/api/v1/namespaces/traefik/pods?watch=1&timeoutSeconds=1&labelSelector=app%3Dcompaction&resourceVersion=${listed}`,
        );
        // A compacted revision: 410, as the status or as the stream's ERROR event.
        return r.status === 410 || JSON.stringify(r.body).includes('"code":410');
      },
      'the revision the sidecar saw to be compacted',
      20_000,
      250,
    );
    const expiredBefore = sample(await scrape(sc.adminUrl), 'trusted_proxy_discovery_watch_restarts_total', { source, reason: 'expired' });
    const acceptedBeforeRestore = proxy.accepted;
    proxy.restore();
    await waitTrusted(sc, '10.3.0.1').catch(async (err: Error) => {
      // Everything the sidecar said and counted, and whether it tried the API at all since the cut.
      const restarts = (await scrape(sc.adminUrl)).split('\n').filter((l) => l.startsWith('trusted_proxy_discovery_'));
      throw new Error(
        `${err.message}; connections to the API tried during the cut: ${acceptedBeforeRestore - acceptedBeforeCut}, since: ${proxy.accepted - acceptedBeforeRestore}; logs: ${JSON.stringify(sc.logs.slice(-12))}; ${restarts.join('; ')}`,
      );
    });
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_discovery_watch_restarts_total', { source, reason: 'expired' })).toBeGreaterThan(expiredBefore);
  } finally {
    await sc.stop();
    await proxy.close();
  }
});

describe('credentials', () => {
  test('a ServiceAccount token rotated in the mounted folder is used at once (the old one no longer works)', async () => {
    await cluster.call('POST', '/api/v1/namespaces/openclaw/serviceaccounts', { metadata: { name: 'rotating' } });
    await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/traefik/rolebindings', {
      metadata: { name: 'rotating' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sidecar-discovery' },
      subjects: [{ kind: 'ServiceAccount', name: 'rotating', namespace: 'openclaw' }],
    });
    const env = await cluster.inCluster('openclaw', 'rotating');
    const proxy = await startTcpProxy(cluster.port);
    const sc = await sidecarWith({ pods: [{ namespace: 'traefik', labelSelector: 'app=rotation' }] }, { ...env, KUBERNETES_SERVICE_PORT: String(proxy.port) });
    try {
      await waitReady(sc);
      // The ServiceAccount is replaced: every token of the old one is refused from now on.
      const old = (await import('node:fs')).readFileSync(join(env.TPS_SERVICEACCOUNT_DIR!, 'token'), 'utf8');
      await cluster.call('DELETE', '/api/v1/namespaces/openclaw/serviceaccounts/rotating');
      await cluster.call('POST', '/api/v1/namespaces/openclaw/serviceaccounts', { metadata: { name: 'rotating' } });
      // The API server caches a token's verdict for a few seconds.
      await waitFor(async () => (await cluster.requestAs(old, 'GET', '/api/v1/namespaces/traefik/pods')).status === 401, 'the old token refused', 30_000, 250);
      writeFileSync(join(env.TPS_SERVICEACCOUNT_DIR!, 'token'), await cluster.serviceAccountToken('openclaw', 'rotating'));
      // The watch is cut, so the sidecar must come back with whatever token is mounted now.
      proxy.cut();
      proxy.restore();
      await createPod('rotation-1', { app: 'rotation' });
      await runPod('rotation-1', ['10.4.0.1']);
      await waitFor(() => trustedBy(sc, '10.4.0.1'), 'the pod trusted, seen with the new token', 15_000).catch((err: Error) => {
        throw new Error(`${err.message}; logs: ${JSON.stringify(sc.logs.filter((l) => l['source']).slice(-6))}`);
      });
      expect((await readiness(sc)).problems).toEqual([]);
    } finally {
      await sc.stop();
      await proxy.close();
    }
  });

  test('a token the API server does not know: the unauthorized (401) problem', async () => {
    const env = await cluster.inCluster('openclaw', 'sidecar');
    writeFileSync(join(env.TPS_SERVICEACCOUNT_DIR!, 'token'), 'not-a-token');
    const sc = await sidecarWith({ pods: [{ namespace: 'traefik', labelSelector: 'app=none' }] }, env);
    try {
      await waitFor(
        async () => (await readiness(sc)).problems.some((p) => p.includes('unauthorized (401): the API server refused the service-account token')),
        'the 401 problem',
        10_000,
      );
      expect(sc.logs.find((l) => l['msg'] === 'discovery source cannot reach the Kubernetes API; retrying' && l['kind'] === 'unauthorized')).toMatchObject({
        level: 50,
      });
    } finally {
      await sc.stop();
    }
  });

  test('outside a cluster, KUBECONFIG is used', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tps-kubeconfig-'));
    try {
      const token = await cluster.serviceAccountToken('openclaw', 'sidecar');
      const file = join(dir, 'config');
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'test', cluster: { server: cluster.url, 'certificate-authority': cluster.caFile } }],
          users: [{ name: 'sidecar', user: { token } }],
          contexts: [{ name: 'test', context: { cluster: 'test', user: 'sidecar' } }],
          'current-context': 'test',
        }),
      );
      await createPod('kubeconfig-1', { app: 'kubeconfig' });
      await runPod('kubeconfig-1', ['10.5.0.1']);
      const sc = await sidecarWith({ pods: [{ namespace: 'traefik', labelSelector: 'app=kubeconfig' }] }, { KUBECONFIG: file });
      try {
        await waitTrusted(sc, '10.5.0.1');
      } finally {
        await sc.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('with no source configured the API is never contacted; a reload adding one starts it', async () => {
  const proxy = await startTcpProxy(cluster.port);
  await createPod('reload-1', { app: 'reload' });
  await runPod('reload-1', ['10.6.0.1']);
  const env = { ...(await cluster.inCluster('openclaw', 'sidecar')), KUBERNETES_SERVICE_PORT: String(proxy.port) };
  const sc = await startSidecar(upstream.url, {}, { configFile: true, discovery: { env, timing: TIMING } });
  try {
    expect((await fetch(`${sc.adminUrl}/readyz`)).status).toBe(200);
    expect(proxy.accepted).toBe(0);
    sc.writeConfig({ ...sc.input, trust: { ...sc.input.trust, discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app=reload' }] } } });
    await waitTrusted(sc, '10.6.0.1');
    expect(proxy.accepted).toBeGreaterThan(0);
    await waitReady(sc);
  } finally {
    await sc.stop();
    await proxy.close();
  }
});

test('without any Kubernetes API configuration only static CIDRs are trusted and readiness says why', async () => {
  const sc = await startSidecar(
    upstream.url,
    { trust: { cidrs: ['10.9.0.0/16'], discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app=x' }] } } },
    { discovery: { env: {}, timing: TIMING } },
  );
  try {
    const { status, problems } = await readiness(sc);
    expect(status).toBe(503);
    expect(problems).toContain(
      'trust discovery cannot reach Kubernetes: no Kubernetes API configured: set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST/PORT)',
    );
    expect(problems).toContain('trust sources not synced: pods:traefik/app=x');
    expect(trustedBy(sc, '10.9.1.1')).toEqual(['static']);
  } finally {
    await sc.stop();
  }
});

// doctor reads the same API: a trusted CIDR that is a node's pod network (a /24, which the
// width bound alone lets pass) is an error once doctor is asked to look (--cluster).
test("doctor --cluster names a trusted CIDR that covers a node's pod CIDR", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tps-doctor-cluster-'));
  try {
    await cluster.call('POST', '/api/v1/nodes', { metadata: { name: 'node-doctor' }, spec: { podCIDR: '10.77.3.0/24', podCIDRs: ['10.77.3.0/24'] } });
    const sidecarFile = join(dir, 'sidecar.yaml');
    const gatewayFile = join(dir, 'openclaw.json');
    const config = { trust: { cidrs: ['10.77.3.0/24', '10.77.4.5'] } };
    writeFileSync(sidecarFile, JSON.stringify(config));
    writeFileSync(gatewayFile, JSON.stringify(mergeGatewayConfig({}, configSchema.parse(config), { publicOrigin: 'https://claw.example.com' })));
    const doctor = async (env: Record<string, string>, ...flags: string[]) => {
      try {
        const { stdout } = await execFileAsync(
          process.execPath,
          [COMMAND, 'doctor', '--config', sidecarFile, '--gateway-config', gatewayFile, '--json', ...flags],
          { env: { PATH: process.env['PATH'], ...env } },
        );
        return { code: 0, out: JSON.parse(stdout) as { findings: { code: string; path: string; problem: string }[] }, stderr: '' };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return {
          code: e.code,
          out: e.stdout ? (JSON.parse(e.stdout) as { findings: { code: string; path: string; problem: string }[] }) : undefined,
          stderr: e.stderr,
        };
      }
    };
    const broad = (r: Awaited<ReturnType<typeof doctor>>) => r.out?.findings.filter((f) => f.code === 'trusted_cidr_too_broad') ?? [];
    expect(broad(await doctor({}))).toEqual([]);
    const withCluster = await doctor({ KUBECONFIG: cluster.kubeconfig }, '--cluster');
    expect(withCluster.code).toBe(2);
    expect(broad(withCluster)).toEqual([
      {
        severity: 'error',
        code: 'trusted_cidr_too_broad',
        path: 'sidecar:trust.cidrs[0]',
        problem: '10.77.3.0/24 covers the pod network of node node-doctor (10.77.3.0/24)',
        userSees: expect.any(String),
        fix: expect.any(String),
      },
    ]);
    const unreachable = await doctor({ KUBECONFIG: join(dir, 'missing') }, '--cluster');
    expect(unreachable).toMatchObject({ code: 2, stderr: expect.stringContaining("cannot list the cluster's nodes") });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
