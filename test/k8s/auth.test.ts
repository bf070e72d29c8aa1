// Credentials and permissions: the projected token re-read when it rotates, an RBAC
// refusal reported plainly, KUBECONFIG outside a cluster, and no API at all.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sample, scrape } from '../support/metrics.js';
import { waitFor } from '../support/wait.js';
import { startHarness, type Harness } from './harness.js';
import { pod } from './objects.js';

const SOURCE = 'pods:traefik/app.kubernetes.io/name=traefik';
const PODS = { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] };
const seed = (api: Harness['api']) => api.upsert('pods', pod('traefik-1', ['10.0.0.1']));
let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

test('a rotated service-account token is used at once; the API server refuses the old one', async () => {
  h = await startHarness(PODS, { seed });
  await h.waitReady();
  const old = h.api.token;
  const fresh = h.api.rotateToken();
  h.api.dropWatches();
  h.api.upsert('pods', pod('traefik-2', ['10.0.0.2']));
  await h.waitTrusted('10.0.0.2');
  const after = h.api.requests.slice(h.api.requests.findLastIndex((r) => r.token === old) + 1);
  expect(after.length).toBeGreaterThan(0);
  expect(after.every((r) => r.token === fresh && r.status === 200)).toBe(true);
  // The old token is refused from now on: nothing in this test was answered 401.
  expect(h.api.requests.some((r) => r.status === 401)).toBe(false);
});

test('an RBAC refusal (403) is reported clearly: readiness, an error log line and a metric', async () => {
  h = await startHarness(PODS, { seed: (api) => (seed(api), api.forbid('pods', 'traefik')) });
  const problem = await waitFor(async () => (await h!.readiness()).problems.find((p) => p.includes('403')), 'a 403 problem');
  expect(problem).toBe(
    `${SOURCE}: not synced: forbidden (403) by RBAC: the service account needs list and watch on pods in namespace traefik (a Role)` +
      ' (pods is forbidden: User "system:serviceaccount:ingress:trusted-proxy-sidecar" cannot list resource "pods" in API group "" in the namespace "traefik")',
  );
  expect(h.logged('discovery source cannot reach the Kubernetes API; retrying')).toMatchObject({ level: 50, kind: 'forbidden', status: 403, source: SOURCE });
  expect(sample(await scrape(h.sc.adminUrl), 'trusted_proxy_discovery_errors_total', { source: SOURCE, kind: 'forbidden' })).toBeGreaterThanOrEqual(1);
  expect(h.trustedBy('10.0.0.1')).toBe(false);
  // Granting the Role fixes it without a restart.
  h.api.allow('pods', 'traefik');
  await h.waitReady();
  expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
});

test('a wrong token (401) is reported as such', async () => {
  h = await startHarness(PODS, { seed });
  writeFileSync(join(h.api.serviceAccountDir, 'token'), 'not-the-token');
  h.api.dropWatches();
  await waitFor(async () => (await h!.readiness()).problems.some((p) => p.includes('unauthorized (401)')), 'a 401 problem');
  expect(h.logged('discovery source cannot reach the Kubernetes API; retrying', (l) => l.kind === 'unauthorized')).toMatchObject({ level: 50 });
});

test('outside a cluster, KUBECONFIG is used', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tps-kubeconfig-'));
  try {
    h = await startHarness(PODS, {
      seed,
      env: (api) => {
        const file = join(dir, 'config');
        writeFileSync(
          file,
          [
            'apiVersion: v1',
            'kind: Config',
            'clusters: [{ name: test, cluster: { server: "' + api.url + '", certificate-authority-data: ' + Buffer.from(api.caPem).toString('base64') + ' } }]',
            'users: [{ name: test, user: { token: ' + api.token + ' } }]',
            'contexts: [{ name: test, context: { cluster: test, user: test } }]',
            'current-context: test',
          ].join('\n'),
        );
        return { KUBECONFIG: file };
      },
    });
    await h.waitReady();
    expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without any Kubernetes API configuration only static CIDRs are trusted and readiness says why', async () => {
  h = await startHarness(PODS, { seed, env: () => ({}), cidrs: ['10.9.0.0/16'] });
  const { status, problems } = await h.readiness();
  expect(status).toBe(503);
  expect(problems).toContain('trust discovery cannot reach Kubernetes: no Kubernetes API configured: set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST/PORT)');
  expect(problems).toContain(`trust sources not synced: ${SOURCE}`);
  expect(h.trustedBy('10.9.0.1')).toEqual(['static']);
  expect(h.api.requests).toHaveLength(0);
});
