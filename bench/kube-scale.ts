// Discovery at cluster scale, on the real API server (the tests' kube-apiserver on kine):
// 5,000 nodes and 20,000 pods, of which 50 are the ingress controller's. For each discovery
// mode, the sidecar (`serve`, in-cluster with a ServiceAccount token) is timed from start
// to ready, and its memory, its trusted set and the API server's CPU for that first sync
// are measured. Then what its watch costs the API server: the CPU to serve 1,000 pod
// changes with no sidecar watching, and with several.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput } from '../src/config/schema.js';
import { startKubeCluster, type KubeCluster } from '../harness/kube-cluster.js';
import { cpuSeconds, freePort, httpOk, owned, rssBytes, start, stopChild, tempDir, until, type Proc } from './procs.js';
import { imageEnv, MAIN } from './sidecar.js';

export interface ScaleMode {
  name: string;
  syncSeconds: number;
  rssBytes: number;
  entries: number;
  /** API server and storage CPU during the sidecar's start and first sync. */
  apiCpuSeconds: number;
}

export interface KubeScaleResult {
  nodes: number;
  pods: number;
  ingressPods: number;
  seedSeconds: number;
  modes: ScaleMode[];
  /** API server and storage CPU to serve `changes` pod updates, with `watchers` sidecars watching pods and without. */
  watch: { changes: number; watchers: number; cpuWithout: number; cpuWith: number };
}

const INGRESS_PODS = 50;
const MODES: { name: string; discovery: NonNullable<NonNullable<ConfigInput['trust']>['discovery']> }[] = [
  { name: 'pods (ingress controller by label)', discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] } },
  { name: 'EndpointSlices (its Service)', discovery: { endpointSlices: [{ namespace: 'traefik', service: 'traefik' }] } },
  { name: 'node pod CIDRs (broad)', discovery: { nodePodCIDRs: { enabled: true } } },
  { name: 'node addresses (hostNetwork)', discovery: { nodeAddresses: { enabled: true, types: ['InternalIP'] } } },
];

/** Runs `count` calls with `concurrency` in flight. */
async function inParallel(count: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await call(next++);
    }),
  );
}

async function seed(cluster: KubeCluster, nodes: number, pods: number): Promise<void> {
  const namespaces = 20;
  for (const ns of ['traefik', 'openclaw', ...Array.from({ length: namespaces }, (_, i) => `apps-${i}`)]) await cluster.namespace(ns);
  await cluster.call('POST', '/api/v1/namespaces/openclaw/serviceaccounts', { metadata: { name: 'sidecar' } });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    metadata: { name: 'sidecar-discovery' },
    rules: [
      { apiGroups: [''], resources: ['pods', 'nodes'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ],
  });
  await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    metadata: { name: 'sidecar-discovery' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sidecar-discovery' },
    subjects: [{ kind: 'ServiceAccount', name: 'sidecar', namespace: 'openclaw' }],
  });
  const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  await inParallel(nodes, 16, async (i) => {
    const cidr = `10.${128 + (i >> 8)}.${i & 255}.0/24`;
    await cluster.call('POST', '/api/v1/nodes', { metadata: { name: `node-${i}` }, spec: { podCIDR: cidr, podCIDRs: [cidr] } });
    await cluster.call(
      'PATCH',
      `/api/v1/nodes/node-${i}/status`,
      { status: { addresses: [{ type: 'InternalIP', address: `172.16.${i >> 8}.${i & 255}` }] } },
      'application/merge-patch+json',
    );
  });
  const container = [{ name: 'app', image: 'app:1' }];
  await inParallel(pods - INGRESS_PODS, 16, (i) =>
    cluster.call('POST', `/api/v1/namespaces/apps-${i % namespaces}/pods`, {
      metadata: { name: `app-${i}`, labels: { app: `app-${i % 100}` } },
      spec: { containers: container },
    }),
  );
  await inParallel(INGRESS_PODS, 16, async (i) => {
    await cluster.call('POST', '/api/v1/namespaces/traefik/pods', {
      metadata: { name: `traefik-${i}`, labels: { 'app.kubernetes.io/name': 'traefik' } },
      spec: { containers: container },
    });
    await cluster.call(
      'PATCH',
      `/api/v1/namespaces/traefik/pods/traefik-${i}/status`,
      { status: { phase: 'Running', podIP: ip(i + 1), podIPs: [{ ip: ip(i + 1) }] } },
      'application/merge-patch+json',
    );
  });
  await cluster.call('POST', '/apis/discovery.k8s.io/v1/namespaces/traefik/endpointslices', {
    metadata: { name: 'traefik-abc', labels: { 'kubernetes.io/service-name': 'traefik' } },
    addressType: 'IPv4',
    endpoints: Array.from({ length: INGRESS_PODS }, (_, i) => ({ addresses: [ip(i + 1)], conditions: { ready: true } })),
  });
}

interface ScaleSidecar extends Proc {
  adminPort: number;
}

async function startScaleSidecar(
  cluster: KubeCluster,
  upstreamPort: number,
  discovery: NonNullable<NonNullable<ConfigInput['trust']>['discovery']>,
): Promise<ScaleSidecar> {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-kube-')));
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys', 'k1'), Buffer.alloc(32, 3));
  const adminPort = await freePort();
  const config: ConfigInput = {
    listen: { host: '127.0.0.1', port: await freePort() },
    admin: { host: '127.0.0.1', port: adminPort },
    // Ready means synced and the upstream accepting: the benchmark's upstream answers.
    upstream: { url: `http://127.0.0.1:${upstreamPort}` },
    trust: { discovery },
    assertion: { keysDir: join(dir, 'keys') },
    logging: { level: 'warn' },
  };
  writeFileSync(join(dir, 'sidecar.yaml'), stringify(config));
  const env = { ...imageEnv(), ...(await cluster.inCluster('openclaw', 'sidecar')) };
  const proc = start(process.execPath, [MAIN, 'serve', '--config', join(dir, 'sidecar.yaml')], { env });
  return { ...proc, adminPort };
}

async function metricsOf(adminPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
}

const apiCpu = (cluster: KubeCluster) => cluster.pids.reduce((n, pid) => n + cpuSeconds(pid), 0);

/** Pod updates (a label flip) in namespaces no sidecar selects; returns the API's CPU for them. */
let flips = 0;
async function churn(cluster: KubeCluster, changes: number): Promise<number> {
  const before = apiCpu(cluster);
  const value = String(flips++);
  await inParallel(changes, 16, (i) =>
    cluster.call('PATCH', `/api/v1/namespaces/apps-${i % 20}/pods/app-${i}`, { metadata: { labels: { churn: value } } }, 'application/merge-patch+json'),
  );
  return apiCpu(cluster) - before;
}

export async function kubeScale(
  sizes: { nodes: number; pods: number; watchers: number; changes: number },
  upstreamPort: number,
  log: (m: string) => void,
): Promise<KubeScaleResult> {
  const cluster = await startKubeCluster({ onSpawn: owned });
  tempDir(cluster.dir);
  try {
    const seeding = performance.now();
    log(`Kubernetes at scale: seeding ${sizes.nodes} nodes and ${sizes.pods} pods into the real API server`);
    await seed(cluster, sizes.nodes, sizes.pods);
    const seedSeconds = (performance.now() - seeding) / 1000;
    const modes: ScaleMode[] = [];
    for (const mode of MODES) {
      log(`Kubernetes at scale: ${mode.name}`);
      const cpuBefore = apiCpu(cluster);
      const started = performance.now();
      const sidecar = await startScaleSidecar(cluster, upstreamPort, mode.discovery);
      try {
        await until(`${mode.name} synced`, () => httpOk(`http://127.0.0.1:${sidecar.adminPort}/readyz`), 120_000, 20).catch((err: Error) => {
          throw new Error(`${err.message}\n${sidecar.output()}`);
        });
        const syncSeconds = (performance.now() - started) / 1000;
        const metrics = await metricsOf(sidecar.adminPort);
        const entries = [...metrics.matchAll(/^trusted_proxy_trusted_set_size\{source="(?!static)[^"]*"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
        modes.push({ name: mode.name, syncSeconds, rssBytes: rssBytes(sidecar.child.pid!), entries, apiCpuSeconds: apiCpu(cluster) - cpuBefore });
      } finally {
        await stopChild(sidecar.child);
      }
    }
    log(`Kubernetes at scale: the API server's CPU for ${sizes.changes} pod changes, without and with ${sizes.watchers} sidecars watching`);
    // Each state twice, the lower figure kept: a slow spell of the machine moves one pass.
    const cpuWithout = Math.min(await churn(cluster, sizes.changes), await churn(cluster, sizes.changes));
    const watchers = await Promise.all(Array.from({ length: sizes.watchers }, () => startScaleSidecar(cluster, upstreamPort, MODES[0]!.discovery)));
    try {
      for (const w of watchers) await until('watcher synced', () => httpOk(`http://127.0.0.1:${w.adminPort}/readyz`), 120_000, 50);
      const cpuWith = Math.min(await churn(cluster, sizes.changes), await churn(cluster, sizes.changes));
      return {
        nodes: sizes.nodes,
        pods: sizes.pods,
        ingressPods: INGRESS_PODS,
        seedSeconds,
        modes,
        watch: { changes: sizes.changes, watchers: sizes.watchers, cpuWithout, cpuWith },
      };
    } finally {
      for (const w of watchers) await stopChild(w.child);
    }
  } finally {
    await cluster.stop();
  }
}
