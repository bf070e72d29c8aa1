// The chart on a real node (test/support/kube-node.ts): a kubelet runs the pod with
// containerd and runc, so what only a node checks is checked: probes and the ports they
// name, the native sidecar's order, the security contexts, volumes and Secrets, Services
// through kube-proxy, discovery of a real proxy pod, `helm test`. The images are this
// checkout's sidecar and the real OpenClaw gateway (scripts/build-node-images.sh).
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHART, CI_VALUES, ROOT } from '../chart/k8s.js';
import { sample } from '../support/metrics.js';
import { startKubeNode, type KubeNode } from '../support/kube-node.js';
import { waitFor } from '../support/wait.js';

const IMAGES = join(ROOT, '.run', 'node-images');
const NS = 'openclaw';
const RELEASE = 'claw';
const values = (file: string) => join(CI_VALUES, file);
let node: KubeNode;

beforeAll(async () => {
  execFileSync(join(ROOT, 'scripts', 'build-node-images.sh'), [IMAGES], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  node = await startKubeNode(IMAGES);
  for (const ns of [NS, 'traefik']) node.kubectl(['create', 'namespace', ns]);
  // The gateway's state volume, as a cluster's storage would offer one.
  const volume = join(node.cluster.dir, 'node', 'state-volume');
  mkdirSync(volume, { recursive: true });
  chownSync(volume, 1000, 1000);
  node.kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: 'openclaw-state' },
    spec: { capacity: { storage: '5Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', hostPath: { path: volume, type: 'Directory' } },
  }));
}, 600_000);
afterAll(async () => {
  await node?.stop();
}, 180_000);

interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  state: { running?: { startedAt: string }; terminated?: { exitCode: number; finishedAt: string } };
}
interface PodJson {
  metadata: { name: string };
  status: { podIP: string; phase: string; conditions: { type: string; status: string }[]; initContainerStatuses: ContainerStatus[]; containerStatuses: ContainerStatus[] };
}

const gatewayPod = (): PodJson => {
  const pods = JSON.parse(node.kubectl(['-n', NS, 'get', 'pods', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'json'])).items as PodJson[];
  const running = pods.filter((p) => p.status.phase === 'Running');
  if (running.length !== 1) throw new Error(`${running.length} running gateway pods`);
  return running[0]!;
};
const admin = async (pod: PodJson, path: string) => (await fetch(`http://${pod.status.podIP}:9090${path}`)).text();

/**
 * A pod that sends requests as a proxy would, on the test's word: GET :8000/send?user=U&path=P
 * makes it request P from the sidecar's Service with U in the identity header, on a new
 * connection, and answer with what came back (status 0 and the error when none did). The
 * test reaches it on its pod address.
 */
async function proxyPod(namespace: string, name: string, labels: Record<string, string>): Promise<(user: string, path: string) => Promise<{ status: number; body: string }>> {
  const service = JSON.parse(node.kubectl(['-n', NS, 'get', 'service', `${RELEASE}-trusted-proxy-sidecar`, '-o', 'json'])).spec.clusterIP as string;
  const script = `require('node:http').createServer((q, s) => {
    const u = new URL(q.url, 'http://x');
    const r = require('node:http').get({ host: '${service}', port: 8080, agent: false, path: u.searchParams.get('path'), headers: { host: 'claw.example.com', 'x-auth-request-email': u.searchParams.get('user') } }, (a) => {
      let body = ''; a.on('data', (c) => (body += c)); a.on('end', () => s.end(JSON.stringify({ status: a.statusCode, body: body.slice(0, 400) })));
    });
    r.on('error', (e) => s.end(JSON.stringify({ status: 0, body: String(e) })));
  }).listen(8000);`;
  node.kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: {
      automountServiceAccountToken: false,
      containers: [{
        name: 'proxy', image: 'ghcr.io/openclaw/openclaw:2026.9.6', imagePullPolicy: 'IfNotPresent', command: ['node', '-e', script],
        securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 },
      }],
    },
  }));
  node.kubectl(['-n', namespace, 'wait', `pod/${name}`, '--for=condition=Ready', '--timeout=60s']);
  const ip = JSON.parse(node.kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'json'])).status.podIP as string;
  return async (user, path) => JSON.parse(await (await fetch(`http://${ip}:8000/send?user=${encodeURIComponent(user)}&path=${encodeURIComponent(path)}`)).text());
}

test('helm install --wait of the chart\'s defaults: the pod Ready, the sidecar a native sidecar serving before the gateway, every probe passing', async () => {
  node.helm(['install', RELEASE, CHART, '-n', NS, '-f', values('defaults-values.yaml'), '--wait', '--timeout', '5m']);
  const pod = gatewayPod();
  expect(pod.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
  const init = new Map(pod.status.initContainerStatuses.map((c) => [c.name, c]));
  // The config step ran to completion, then the sidecar started and stays up.
  expect(init.get('gateway-config')?.state.terminated?.exitCode).toBe(0);
  const sidecar = init.get('sidecar')!;
  expect(sidecar).toMatchObject({ ready: true, started: true, restartCount: 0 });
  const gateway = pod.status.containerStatuses.find((c) => c.name === 'gateway')!;
  expect(gateway).toMatchObject({ ready: true, restartCount: 0 });
  expect(Date.parse(sidecar.state.running!.startedAt)).toBeLessThanOrEqual(Date.parse(gateway.state.running!.startedAt));
  // The probes through the admin port pass (the gateway's by number), the key Secret and the config are mounted.
  expect(JSON.parse(await admin(pod, '/gateway/readyz'))).toEqual({ ok: true });
  const metrics = await admin(pod, '/metrics');
  expect(sample(metrics, 'trusted_proxy_assertion_keys_loaded')).toBe(1);
  expect(sample(metrics, 'trusted_proxy_ready')).toBe(1);
  // Non-root, and a root file system it cannot write.
  const inSidecar = node.kubectl(['-n', NS, 'exec', pod.metadata.name, '-c', 'sidecar', '--', '/nodejs/bin/node', '-e',
    "let w; try { require('node:fs').writeFileSync('/app/x', 'x'); w = 'written' } catch (e) { w = e.code } console.log(process.getuid(), w)"]);
  expect(inSidecar.trim()).toBe('65532 EROFS');
  const inGateway = node.kubectl(['-n', NS, 'exec', pod.metadata.name, '-c', 'gateway', '--', 'node', '-e',
    "let w; try { require('node:fs').writeFileSync('/app/x', 'x'); w = 'written' } catch (e) { w = e.code } console.log(process.getuid(), w)"]);
  expect(inGateway.trim()).toBe('1000 EROFS');
}, 420_000);

test('with the guard: a request from the discovered proxy pod through the Service reaches the gateway through the guard; another pod is refused', async () => {
  node.helm(['upgrade', RELEASE, CHART, '-n', NS, '-f', values('guard-values.yaml'), '--wait', '--timeout', '5m']);
  let pod = gatewayPod();
  expect(pod.status.initContainerStatuses.find((c) => c.name === 'guard-install')?.state.terminated?.exitCode).toBe(0);
  expect(node.kubectl(['-n', NS, 'logs', pod.metadata.name, '-c', 'gateway'])).toContain('trusted-proxy-sidecar guard: requests on port 18789 need a valid assertion');

  const proxy = await proxyPod('traefik', 'traefik', { 'app.kubernetes.io/name': 'traefik' });
  const stranger = await proxyPod('default', 'stranger', {});
  // Discovery has the proxy pod's address before it is asked to forward.
  await waitFor(async () => sample(await admin(pod, '/metrics'), 'trusted_proxy_trusted_set_size', { source: 'pods:traefik/app.kubernetes.io/name=traefik' }) === 1, 'the proxy pod discovered', 30_000, 250);
  const allowed = await proxy('alice@example.com', '/');
  // The Control UI's page: the guard in the gateway's process verified the assertion the sidecar signed.
  expect(allowed.status).toBe(200);
  expect(allowed.body).not.toContain('assertion_');
  const refused = await stranger('alice@example.com', '/');
  expect(refused).toEqual({ status: 403, body: '{"error":"untrusted_source"}' });

  // The proxy pod goes: discovery drops its address.
  node.kubectl(['-n', 'traefik', 'delete', 'pod', 'traefik', '--grace-period=1', '--wait=true']);
  pod = gatewayPod();
  await waitFor(async () => sample(await admin(pod, '/metrics'), 'trusted_proxy_trusted_set_size', { source: 'pods:traefik/app.kubernetes.io/name=traefik' }) === 0, 'the proxy pod forgotten', 30_000, 250);
}, 420_000);

test('helm test: from a pod that is not the proxy, the sidecar refuses, and the gateway port is closed on the pod\'s address', () => {
  const out = node.helm(['test', RELEASE, '-n', NS, '--logs', '--timeout', '2m']);
  expect(out).toMatch(/Phase:\s+Succeeded/);
  expect(out).toContain('a forged identity from');
  expect(out).toMatch(/admin port open, gateway port ECONNREFUSED/);
}, 180_000);

test('a key rotation as install.md orders it, while requests flow: none fails, and the pod does not roll', async () => {
  const pod = gatewayPod();
  const proxy = await proxyPod('traefik', 'traefik-2', { 'app.kubernetes.io/name': 'traefik' });
  await waitFor(async () => sample(await admin(pod, '/metrics'), 'trusted_proxy_trusted_set_size', { source: 'pods:traefik/app.kubernetes.io/name=traefik' }) === 1, 'the proxy pod discovered', 30_000, 250);
  const statuses = new Map<number, number>();
  let flowing = true;
  // One request after another through the proxy, the Service, the sidecar and the guard.
  const flow = (async () => {
    for (let i = 0; flowing && i < 5000; i++) {
      const { status } = await proxy('alice@example.com', `/?n=${i}`);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  })();
  const signedBy = async (kid: string) => sample(await admin(pod, '/metrics'), 'trusted_proxy_assertions_signed_total', { kid });
  try {
    // 1. a second key in the Secret; the sidecar loads it and keeps signing with k1.
    const k2 = execFileSync('openssl', ['rand', '-base64', '48'], { encoding: 'utf8' }).trim();
    await node.kubectlAsync(['-n', NS, 'patch', 'secret', `${RELEASE}-trusted-proxy-sidecar-hmac`, '-p', JSON.stringify({ data: { k2: Buffer.from(k2).toString('base64') } })]);
    await waitFor(async () => sample(await admin(pod, '/metrics'), 'trusted_proxy_assertion_keys_loaded') === 2, 'the sidecar to load k2', 60_000, 250);
    // 2. helm upgrade names k2: the ConfigMap changes, the pod stays, the sidecar signs with k2.
    await node.helmAsync(['upgrade', RELEASE, CHART, '-n', NS, '-f', values('guard-values.yaml'), '--set', 'hmac.activeKeyId=k2', '--wait', '--timeout', '3m']);
    const before = await signedBy('k2');
    await waitFor(async () => (await signedBy('k2')) > before + 20, 'assertions signed with k2 reaching the gateway', 60_000, 250);
  } finally {
    flowing = false;
    await flow;
  }
  expect(gatewayPod().metadata.name).toBe(pod.metadata.name);
  expect(Object.fromEntries(statuses)).toEqual({ 200: expect.any(Number) });
  expect(statuses.get(200)).toBeGreaterThan(20);
}, 300_000);
