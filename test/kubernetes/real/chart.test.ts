// The chart and the plain manifests on a real API server with real Helm: every ci/ values
// file linted (--strict) under Helm 3 and Helm 4, rendered and applied with a server-side
// dry run (Traefik's and the Prometheus Operator's published CRDs installed); then
// installed, and the sidecar started with the token of the ServiceAccount the chart made:
// it syncs (the Role is sufficient) and reads outside the Role are refused (it is minimal).
// `helm upgrade` keeps the generated key Secret. The kustomize base and component likewise.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import type { ConfigInput } from '../../../src/config/schema.js';
import { CHART, CI_VALUES, ciValuesFiles, HELM, KUBE_VERSION, ROOT } from '../../chart/k8s.js';
import { KUBECTL, startKubeCluster, type KubeCluster } from '../../../harness/kube-cluster.js';
import { startSidecar } from '../../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../../harness/upstream.js';
import { waitFor } from '../../../harness/wait.js';

const CRDS = join(ROOT, '.tools/crds');
let cluster: KubeCluster;
let upstream: RecordingUpstream;
let tmp: string;

beforeAll(async () => {
  cluster = await startKubeCluster();
  upstream = await startRecordingUpstream();
  tmp = mkdtempSync(join(tmpdir(), 'tps-chart-real-'));
  for (const file of readdirSync(CRDS)) cluster.kubectl(['apply', '--server-side', '-f', join(CRDS, file)]);
  // The namespaces the ci/ values name: the release's, the ingress controllers', monitoring.
  for (const ns of ['openclaw', 'traefik', 'edge', 'ingress', 'monitoring']) await cluster.namespace(ns);
  await waitFor(
    () =>
      cluster
        .kubectl(['get', 'crd', 'ingressroutes.traefik.io', 'servicemonitors.monitoring.coreos.com', 'httproutes.gateway.networking.k8s.io', '-o', 'name'])
        .split('\n')
        .filter(Boolean).length === 3,
    'the CRDs established',
    30_000,
    200,
  );
}, 120_000);
afterAll(async () => {
  await upstream?.close();
  await cluster?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function helm(version: 3 | 4, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(HELM[version], [...args, '--kubeconfig', cluster.kubeconfig], {
    encoding: 'utf8',
    env: { ...process.env, HELM_CACHE_HOME: join(tmp, 'helm-cache'), HELM_CONFIG_HOME: join(tmp, 'helm-config'), HELM_DATA_HOME: join(tmp, 'helm-data') },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const files = ciValuesFiles();

describe.each([3, 4] as const)('Helm %i', (version) => {
  test.each(files)('helm lint --strict with ci/%s', (file) => {
    const r = helm(version, ['lint', '--strict', CHART, '-f', join(CI_VALUES, file), '--kube-version', KUBE_VERSION]);
    expect({ status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
    expect(r.stdout).toContain('0 chart(s) failed');
  });

  test('the defaults alone lint clean; install without publicUrl fails with a clear message', () => {
    expect(helm(version, ['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]).status).toBe(0);
    const r = helm(version, ['install', 'nourl', CHART, '--namespace', 'openclaw', '--dry-run=server']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('publicUrl is required');
  });
});

/** Cluster-scoped kinds the chart makes; every other object lives in a namespace. */
const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding']);

/** Objects as Helm installs them: the release namespace where a template leaves it out. */
function inNamespace(stream: string, namespace: string): string {
  return parseAllDocuments(stream)
    .map((d) => d.toJS() as { kind: string; metadata: { namespace?: string } } | null)
    .filter((o): o is { kind: string; metadata: { namespace?: string } } => o !== null)
    .map((o) => (CLUSTER_SCOPED.has(o.kind) || o.metadata.namespace ? o : { ...o, metadata: { ...o.metadata, namespace } }))
    .map((o) => stringify(o))
    .join('---\n');
}

test.each(files)("ci/%s: rendered, it passes the API server's own validation (server-side dry run)", (file) => {
  const rendered = helm(3, ['template', 'claw', CHART, '--namespace', 'openclaw', '-f', join(CI_VALUES, file)]);
  expect(rendered.status).toBe(0);
  const out = cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], inNamespace(rendered.stdout, 'openclaw'));
  expect(out).toMatch(/deployment\.apps\/claw-trusted-proxy-sidecar serverside-applied \(server dry run\)/);
  expect(out).not.toMatch(/error|invalid/i);
});

/** The sidecar config the chart made, as a pod would mount it, run here against the real API. */
async function startFromRelease(namespace: string, release: string, serviceAccount: string) {
  const configMap = await cluster.call('GET', `/api/v1/namespaces/${namespace}/configmaps/${release}-trusted-proxy-sidecar-sidecar`);
  const config = parse(configMap.data['sidecar.yaml'] as string) as ConfigInput;
  const env = await cluster.inCluster(namespace, serviceAccount);
  // Only what binds to this machine changes: ports, the upstream and the key folder (startSidecar's).
  return startSidecar(
    upstream.url,
    { trust: config.trust, identity: config.identity, gateway: config.gateway },
    { discovery: { env, timing: { backoffBaseMs: 50, backoffMaxMs: 400 } } },
  );
}

/** Reads outside the Role, as the ServiceAccount: the status of each (403 when refused). */
async function outsideRole(namespace: string, serviceAccount: string): Promise<Record<string, number>> {
  const token = await cluster.serviceAccountToken(namespace, serviceAccount);
  const status = async (path: string) => (await cluster.requestAs(token, 'GET', path)).status;
  return {
    secrets: await status(`/api/v1/namespaces/${namespace}/secrets`),
    configmaps: await status(`/api/v1/namespaces/${namespace}/configmaps`),
    'pods in its own namespace': await status(`/api/v1/namespaces/${namespace}/pods`),
    'one pod by name': await status('/api/v1/namespaces/traefik/pods/anything'),
  };
}

describe.each(files.filter((f) => f.startsWith('discovery-') || f === 'defaults-values.yaml'))('installed with ci/%s', (file) => {
  const name = file.replace(/-values\.yaml$/, '').replace(/[^a-z0-9]+/g, '-');
  // A release and a namespace of its own: the Roles it makes in the ingress namespaces are
  // named after the release, so installs side by side do not collide.
  const namespace = `rel-${name}`.slice(0, 40);
  const release = `c-${name}`.slice(0, 30);
  beforeAll(async () => {
    await cluster.namespace(namespace);
    const r = helm(3, ['install', release, CHART, '--namespace', namespace, '-f', join(CI_VALUES, file)]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  }, 120_000);

  test("the sidecar syncs with the ServiceAccount's token (the Role suffices), and nothing outside it is allowed", async () => {
    const sc = await startFromRelease(namespace, release, `${release}-trusted-proxy-sidecar`);
    try {
      await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, 'the sidecar synced and ready', 15_000).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(await (await fetch(`${sc.adminUrl}/readyz`)).json())}`);
      });
    } finally {
      await sc.stop();
    }
    expect(await outsideRole(namespace, `${release}-trusted-proxy-sidecar`)).toEqual({
      secrets: 403,
      configmaps: 403,
      'pods in its own namespace': 403,
      'one pod by name': 403,
    });
  });
});

test('helm upgrade keeps the generated HMAC key Secret (lookup on the real server)', async () => {
  await cluster.namespace('upgrade');
  const values = join(CI_VALUES, 'defaults-values.yaml');
  const installed = helm(3, ['install', 'up', CHART, '--namespace', 'upgrade', '-f', values]);
  expect(installed.status).toBe(0);
  // The NOTES tell the URL and how to check it.
  expect(installed.stdout).toContain('Open: https://claw.example.com');
  expect(installed.stdout).toContain('/readyz');
  const key = async () => (await cluster.call('GET', '/api/v1/namespaces/upgrade/secrets/up-trusted-proxy-sidecar-hmac')).data.k1 as string;
  const before = await key();
  expect(Buffer.from(before, 'base64')).toHaveLength(48);
  const upgraded = helm(3, ['upgrade', 'up', CHART, '--namespace', 'upgrade', '-f', values, '--set', 'sidecar.config.logging.level=debug']);
  expect({ status: upgraded.status, stderr: upgraded.stderr }).toEqual({ status: 0, stderr: '' });
  expect(await key()).toBe(before);
  // And with Helm 4 over the same release.
  expect(helm(4, ['upgrade', 'up', CHART, '--namespace', 'upgrade', '-f', values]).status).toBe(0);
  expect(await key()).toBe(before);
});

describe('the kustomize base and component', () => {
  test('the base applies as docs/install.md says, and its sidecar syncs with its ServiceAccount and nothing more', async () => {
    // Exactly the documented command (with the Secret it expects beside it).
    await cluster.call('POST', '/api/v1/namespaces/openclaw/secrets', {
      metadata: { name: 'openclaw-hmac' },
      data: { k1: Buffer.alloc(48, 1).toString('base64') },
    });
    cluster.kubectl(['apply', '-k', join(ROOT, 'manifests/base')]);
    const built = execFileSync(KUBECTL, ['kustomize', join(ROOT, 'manifests/base')], { encoding: 'utf8' });
    const objects = parseAllDocuments(built).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string } });
    const sa = objects.find((o) => o?.kind === 'ServiceAccount')!.metadata;
    const cm = objects.find((o) => o?.kind === 'ConfigMap' && o.metadata.name.includes('sidecar'))!.metadata;
    const configMap = await cluster.call('GET', `/api/v1/namespaces/${cm.namespace}/configmaps/${cm.name}`);
    const config = parse(configMap.data['sidecar.yaml'] as string) as ConfigInput;
    const sc = await startSidecar(
      upstream.url,
      { trust: config.trust, identity: config.identity },
      { discovery: { env: await cluster.inCluster(sa.namespace!, sa.name), timing: { backoffBaseMs: 50, backoffMaxMs: 400 } } },
    );
    try {
      await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, 'the base sidecar synced', 15_000);
    } finally {
      await sc.stop();
    }
    expect(await outsideRole(sa.namespace!, sa.name)).toEqual({ secrets: 403, configmaps: 403, 'pods in its own namespace': 403, 'one pod by name': 403 });
  });

  test('the component, added to a gateway Deployment, passes the server-side dry run', () => {
    const built = execFileSync(KUBECTL, ['kustomize', join(ROOT, 'test/chart/fixtures/component')], { encoding: 'utf8' });
    const out = cluster.kubectl(['apply', '--server-side', '--dry-run=server', '--namespace', 'openclaw', '-f', '-'], built);
    expect(out).toMatch(/deployment\.apps\/my-gateway serverside-applied \(server dry run\)/);
  });
});
