// The chart on a real node (test/support/kube-node.ts): a kubelet runs the pod with
// containerd and runc, so what only a node checks is checked: probes and the ports they
// name, the native sidecar's order, the security contexts, volumes and Secrets, Services
// through kube-proxy, discovery of a real proxy pod, `helm test`. The images are this
// checkout's sidecar and the real OpenClaw gateway (scripts/build-node-images.sh).
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CHART, CI_VALUES, ciValuesFiles, layOutOpenClawExample, ROOT } from '../chart/k8s.js';
import { makeClientCert, makeTestCa } from '../../harness/test-ca.js';
import { sample } from '../support/metrics.js';
import { startKubeNode, type KubeNode } from '../support/kube-node.js';
import { waitFor } from '../../harness/wait.js';

const IMAGES = join(ROOT, '.run', 'node-images');
const NS = 'openclaw';
const RELEASE = 'claw';
const values = (file: string) => join(CI_VALUES, file);
let node: KubeNode;

beforeAll(async () => {
  execFileSync(join(ROOT, 'scripts', 'build-node-images.sh'), [IMAGES], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  node = await startKubeNode(IMAGES);
  for (const ns of [NS, 'traefik']) node.kubectl(['create', 'namespace', ns]);
  // The gateways' state volumes (the chart's, OpenClaw's manifests'), as a cluster's storage would offer them.
  for (const [name, storage] of [
    ['openclaw-state', '5Gi'],
    ['openclaw-home', '10Gi'],
  ] as const) {
    const volume = join(node.cluster.dir, 'node', name);
    mkdirSync(volume, { recursive: true });
    chownSync(volume, 1000, 1000);
    node.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name },
        spec: { capacity: { storage }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', hostPath: { path: volume, type: 'Directory' } },
      }),
    );
  }
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
  status: {
    podIP: string;
    phase: string;
    conditions: { type: string; status: string }[];
    initContainerStatuses: ContainerStatus[];
    containerStatuses: ContainerStatus[];
  };
}

/** The pods of `namespace` that `selector` selects and that run. */
const runningPods = (namespace: string, selector: string): PodJson[] =>
  (JSON.parse(node.kubectl(['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'json'])).items as PodJson[]).filter((p) => p.status.phase === 'Running');
/** The one running pod of `selector`, or an error. */
const onePod = (namespace: string, selector: string): PodJson => {
  const running = runningPods(namespace, selector);
  if (running.length !== 1) throw new Error(`${running.length} running pods of ${selector}`);
  return running[0]!;
};
const gatewayPod = (): PodJson => onePod(NS, `app.kubernetes.io/instance=${RELEASE}`);
/** What `node -e SCRIPT` prints in a container (its `node` found at `nodePath`). */
const nodeIn = (target: string, container: string, script: string, nodePath = 'node'): string =>
  node.kubectl(['-n', NS, 'exec', target, '-c', container, '--', nodePath, '-e', script]);
const admin = async (pod: PodJson, path: string) => (await fetch(`http://${pod.status.podIP}:9090${path}`)).text();
const PROXY_SOURCE = { source: 'pods:traefik/app.kubernetes.io/name=traefik' };
const trustedProxies = async (pod: PodJson) => sample(await admin(pod, '/metrics'), 'trusted_proxy_trusted_set_size', PROXY_SOURCE);
/** Discovery in the gateway pod has the address of every proxy pod that runs. */
async function proxiesDiscovered(pod: PodJson): Promise<void> {
  await waitFor(
    async () => (await trustedProxies(pod)) === runningPods('traefik', 'app.kubernetes.io/name=traefik').length,
    'the proxy pods discovered',
    30_000,
    250,
  );
}

/** What the proxy pod got back: status 0 and the error when no answer came, and whether its connection was ever established. */
interface Sent {
  status: number;
  body: string;
  connected: boolean;
}

/**
 * A pod that sends requests as a proxy would, on the test's word: GET :8000/send?host=H&port=N&user=U&path=P
 * makes it request P from H:N with U in the identity header, on a new connection, and
 * answer with what came back. The test reaches it on its pod address; `to(service, port)`
 * sends to a Service of the gateway's namespace, `send` to the chart's.
 */
async function proxyPod(namespace: string, name: string, labels: Record<string, string>) {
  const script = `require('node:http').createServer((q, s) => {
    const u = new URL(q.url, 'http://x');
    let connected = false;
    const r = require('node:http').get({ host: u.searchParams.get('host'), port: Number(u.searchParams.get('port')), agent: false, timeout: 5000, path: u.searchParams.get('path'), headers: { host: 'claw.example.com', 'x-auth-request-email': u.searchParams.get('user') } }, (a) => {
      let body = ''; a.on('data', (c) => (body += c)); a.on('end', () => s.end(JSON.stringify({ status: a.statusCode, body: body.slice(0, 400), connected })));
    });
    r.on('socket', (k) => k.once('connect', () => (connected = true)));
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.on('error', (e) => s.end(JSON.stringify({ status: 0, body: String(e), connected })));
  }).listen(8000);`;
  node.kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels },
      spec: {
        automountServiceAccountToken: false,
        containers: [
          {
            name: 'proxy',
            image: 'ghcr.io/openclaw/openclaw:2026.9.6',
            imagePullPolicy: 'IfNotPresent',
            command: ['node', '-e', script],
            securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 },
          },
        ],
      },
    }),
  );
  node.kubectl(['-n', namespace, 'wait', `pod/${name}`, '--for=condition=Ready', '--timeout=60s']);
  const ip = JSON.parse(node.kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'json'])).status.podIP as string;
  const to = (service: string, port: number) => {
    let host: string | undefined;
    return async (user: string, path: string): Promise<Sent> => {
      host ??= JSON.parse(node.kubectl(['-n', NS, 'get', 'service', service, '-o', 'json'])).spec.clusterIP as string;
      const query = new URLSearchParams({ host, port: String(port), user, path });
      return JSON.parse(await (await fetch(`http://${ip}:8000/send?${query}`)).text()) as Sent;
    };
  };
  return { ip, to, send: to(`${RELEASE}-trusted-proxy-sidecar`, 8080) };
}

test("helm install --wait of the chart's defaults: the pod Ready, the sidecar a native sidecar serving before the gateway, every probe passing", async () => {
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
  const writesApp = "let w; try { require('node:fs').writeFileSync('/app/x', 'x'); w = 'written' } catch (e) { w = e.code } console.log(process.getuid(), w)";
  expect(nodeIn(pod.metadata.name, 'sidecar', writesApp, '/nodejs/bin/node').trim()).toBe('65532 EROFS');
  expect(nodeIn(pod.metadata.name, 'gateway', writesApp).trim()).toBe('1000 EROFS');
}, 420_000);

test('with the guard: a request from the discovered proxy pod through the Service reaches the gateway through the guard; another pod is refused', async () => {
  node.helm(['upgrade', RELEASE, CHART, '-n', NS, '-f', values('guard-values.yaml'), '--wait', '--timeout', '5m']);
  let pod = gatewayPod();
  expect(pod.status.initContainerStatuses.find((c) => c.name === 'guard-install')?.state.terminated?.exitCode).toBe(0);
  expect(node.kubectl(['-n', NS, 'logs', pod.metadata.name, '-c', 'gateway'])).toContain(
    'trusted-proxy-sidecar guard: requests on port 18789 need a valid assertion',
  );

  const { send: proxy } = await proxyPod('traefik', 'traefik', { 'app.kubernetes.io/name': 'traefik' });
  const { send: stranger } = await proxyPod('default', 'stranger', {});
  // Discovery has the proxy pod's address before it is asked to forward.
  await proxiesDiscovered(pod);
  const allowed = await proxy('alice@example.com', '/');
  // The Control UI's page: the guard in the gateway's process verified the assertion the sidecar signed.
  expect(allowed.status).toBe(200);
  expect(allowed.body).not.toContain('assertion_');
  const refused = await stranger('alice@example.com', '/');
  expect(refused).toEqual({ status: 403, body: '{"error":"untrusted_source"}', connected: true });

  // The proxy pod goes: discovery drops its address.
  node.kubectl(['-n', 'traefik', 'delete', 'pod', 'traefik', '--grace-period=1', '--wait=true']);
  pod = gatewayPod();
  await waitFor(async () => (await trustedProxies(pod)) === 0, 'the proxy pod forgotten', 30_000, 250);
}, 420_000);

test("helm test: from a pod that is not the proxy, the sidecar refuses, and the gateway port is closed on the pod's address", () => {
  let out: string;
  try {
    out = node.helm(['test', RELEASE, '-n', NS, '--logs', '--timeout', '2m']);
  } catch (err) {
    throw new Error(
      `helm test failed: ${(err as { stdout?: string }).stdout ?? ''}${node.kubectl(['-n', NS, 'logs', `${RELEASE}-trusted-proxy-sidecar-test`])}`,
      { cause: err },
    );
  }
  expect(out).toMatch(/Phase:\s+Succeeded/);
  expect(out).toContain('a forged identity from');
  expect(out).toMatch(/admin port open, gateway port ECONNREFUSED/);
}, 180_000);

test('a key rotation as install.md orders it, while requests flow: none fails, and the pod does not roll', async () => {
  const pod = gatewayPod();
  const { send: proxy } = await proxyPod('traefik', 'traefik-2', { 'app.kubernetes.io/name': 'traefik' });
  await proxiesDiscovered(pod);
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
    await node.kubectlAsync([
      '-n',
      NS,
      'patch',
      'secret',
      `${RELEASE}-trusted-proxy-sidecar-hmac`,
      '-p',
      JSON.stringify({ data: { k2: Buffer.from(k2).toString('base64') } }),
    ]);
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

/**
 * Requests one after another through the proxy pod, each on a new connection, while
 * `rollout` replaces the pod, until the new pod (`replaced` says when the old one is gone)
 * has answered 20. Every request is answered 200 by a gateway or refused at connect: a 502
 * from a sidecar whose gateway had gone, or a connection cut after it was made, would be a
 * request lost inside the pod.
 */
async function rolloutUnderLoad(send: (user: string, path: string) => Promise<Sent>, rollout: () => Promise<void>, replaced: () => boolean) {
  let answered = 0;
  let refusedAtConnect = 0;
  const lost: Sent[] = [];
  let servedByNew = 0;
  let rolledOut = false;
  const flow = (async () => {
    for (let i = 0; servedByNew < 20 && i < 20_000; i++) {
      const sent = await send('alice@example.com', `/?n=${i}`);
      if (sent.status === 200) {
        answered++;
        if (rolledOut) servedByNew++;
      } else if (sent.status === 0 && !sent.connected) refusedAtConnect++;
      else lost.push(sent);
    }
  })();
  try {
    await waitFor(() => answered > 20, 'requests flowing', 60_000, 100);
    await rollout();
    await waitFor(replaced, 'the new pod running alone', 120_000, 250);
  } finally {
    rolledOut = true;
    await flow;
  }
  expect(lost).toEqual([]);
  expect(servedByNew).toBe(20);
  expect(answered).toBeGreaterThan(40);
  // The window in which no pod serves (Recreate: the old one gone before the new one runs).
  expect(refusedAtConnect).toBeGreaterThan(0);
}

test('a rollout (one gateway, Recreate) loses no request that reached the pod: each is answered by a gateway; the rest are refused at connect', async () => {
  const old = gatewayPod();
  const { send } = await proxyPod('traefik', 'traefik-3', { 'app.kubernetes.io/name': 'traefik' });
  await proxiesDiscovered(old);
  const deployment = `deployment/${RELEASE}-trusted-proxy-sidecar`;
  await rolloutUnderLoad(
    send,
    async () => {
      await node.kubectlAsync(['-n', NS, 'rollout', 'restart', deployment]);
      await node.kubectlAsync(['-n', NS, 'rollout', 'status', deployment, '--timeout=5m']);
    },
    () => {
      try {
        return gatewayPod().metadata.name !== old.metadata.name;
      } catch {
        return false;
      }
    },
  );
}, 420_000);

test("OpenClaw's own manifests with both components, as install.md lays them out: seeded once, trust merged on every start, served through the sidecar, a rollout loses nothing", async () => {
  node.helm(['uninstall', RELEASE, '-n', NS, '--wait']);
  // A checkout of OpenClaw's repository beside this one's manifests, as the example expects.
  const { manifests, overlay } = layOutOpenClawExample(join(node.cluster.dir, 'user'));
  // The user's steps: the proxy's address in the sidecar's config, and the two Secrets.
  const proxy = await proxyPod('traefik', 'traefik-oc', { 'app.kubernetes.io/name': 'traefik' });
  const sidecarConfig = join(manifests, 'sidecar-component', 'sidecar.yaml');
  const config = parse(readFileSync(sidecarConfig, 'utf8'));
  config.trust.cidrs = [`${proxy.ip}/32`];
  writeFileSync(sidecarConfig, stringify(config));
  const random = () => execFileSync('openssl', ['rand', '-base64', '48'], { encoding: 'utf8' }).trim();
  node.kubectl(['-n', NS, 'create', 'secret', 'generic', 'trusted-proxy-sidecar-hmac', `--from-literal=k1=${random()}`]);
  node.kubectl(['-n', NS, 'create', 'secret', 'generic', 'openclaw-secrets', `--from-literal=OPENCLAW_GATEWAY_TOKEN=${random()}`]);

  await node.kubectlAsync(['apply', '-k', overlay]);
  await node.kubectlAsync(['-n', NS, 'rollout', 'status', 'deployment/openclaw', '--timeout=5m']);
  const pods = () => runningPods(NS, 'app=openclaw');
  const first = pods()[0]!;
  const order = first.status.initContainerStatuses.map((c) => c.name);
  expect(order).toEqual(['trusted-proxy-sidecar', 'init-config', 'trusted-proxy-gateway-config']);
  const persisted = () =>
    JSON.parse(nodeIn('deploy/openclaw', 'gateway', "process.stdout.write(require('node:fs').readFileSync('/home/node/.openclaw/openclaw.json', 'utf8'))"));
  // Seeded from OpenClaw's ConfigMap (the volume was empty), then the trust settings merged in.
  let file = persisted();
  expect(file.cron).toEqual({ enabled: false });
  expect(file.gateway.auth.mode).toBe('trusted-proxy');
  expect(file.gateway.controlUi.allowedOrigins).toEqual(['https://claw.example.com']);
  const send = proxy.to('openclaw', 18789);
  expect(await send('alice@example.com', '/')).toMatchObject({ status: 200 });

  // A change made through OpenClaw lands in the persisted copy; then the user changes the
  // public origin in the config step and applies again, while requests flow.
  nodeIn(
    'deploy/openclaw',
    'gateway',
    "const f = '/home/node/.openclaw/openclaw.json'; const fs = require('node:fs'); const c = JSON.parse(fs.readFileSync(f, 'utf8')); c.cron = { enabled: true }; fs.writeFileSync(f, JSON.stringify(c))",
  );
  const step = join(manifests, 'openclaw-component', 'gateway-config-step.yaml');
  writeFileSync(step, readFileSync(step, 'utf8').replace('https://claw.example.com', 'https://claw2.example.com'));
  await rolloutUnderLoad(
    send,
    async () => {
      await node.kubectlAsync(['apply', '-k', overlay]);
      await node.kubectlAsync(['-n', NS, 'rollout', 'status', 'deployment/openclaw', '--timeout=5m']);
    },
    () => pods().length === 1 && pods()[0]!.metadata.name !== first.metadata.name,
  );
  // The persisted copy won over the ConfigMap; the config step ran again on the new start.
  file = persisted();
  expect(file.cron).toEqual({ enabled: true });
  expect(file.gateway.controlUi.allowedOrigins).toEqual(['https://claw.example.com', 'https://claw2.example.com']);
}, 600_000);

test('every other ci/ values file, installed side by side with helm install --wait: each pod Ready, its sidecar ready with its key, the guard in front of the gateway where it is on', async () => {
  const files = ciValuesFiles().filter((f) => !['defaults-values.yaml', 'guard-values.yaml'].includes(f));
  // What the values name that a cluster would already have: the CRDs of the objects they
  // turn on, the ingress controllers' namespaces, a PriorityClass, and Secrets.
  const crds = join(ROOT, '.tools', 'crds');
  for (const file of readdirSync(crds)) await node.kubectlAsync(['apply', '--server-side', '-f', join(crds, file)]);
  for (const ns of ['edge', 'ingress', 'monitoring']) node.kubectl(['create', 'namespace', ns]);
  node.kubectl(['create', 'priorityclass', 'high-priority', '--value=1000']);
  await node.kubectlAsync([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/ingressroutes.traefik.io',
    'crd/servicemonitors.monitoring.coreos.com',
    'crd/podmonitors.monitoring.coreos.com',
    'crd/prometheusrules.monitoring.coreos.com',
    'crd/httproutes.gateway.networking.k8s.io',
  ]);
  const certs = join(node.cluster.dir, 'ci-certs');
  mkdirSync(certs, { recursive: true });
  const ca = makeTestCa(certs, ['c-mtls-trusted-proxy-sidecar.ci-mtls.svc']);
  const client = makeClientCert(certs, 'traefik', '/CN=traefik', ['DNS:traefik.traefik.svc']);
  const random = () => execFileSync('openssl', ['rand', '-base64', '48'], { encoding: 'utf8' }).trim();
  const prerequisites: Record<string, (ns: string) => void> = {
    'existing-secret-values.yaml': (ns) =>
      node.kubectl(['-n', ns, 'create', 'secret', 'generic', 'claw-hmac-keys', `--from-literal=k1=${random()}`, `--from-literal=k2=${random()}`]),
    'mtls-values.yaml': (ns) => {
      node.kubectl([
        '-n',
        ns,
        'create',
        'secret',
        'generic',
        'claw-sidecar-tls',
        `--from-file=tls.crt=${ca.certFile}`,
        `--from-file=tls.key=${ca.keyFile}`,
        `--from-file=ca.crt=${ca.caFile}`,
      ]);
      node.kubectl(['-n', ns, 'create', 'secret', 'tls', 'traefik-client-tls', `--cert=${client.certFile}`, `--key=${client.keyFile}`]);
    },
    'all-optional-values.yaml': (ns) =>
      node.kubectl(['-n', ns, 'create', 'secret', 'generic', 'openclaw-provider-keys', '--from-literal=ANTHROPIC_API_KEY=unused']),
  };
  const releases = files.map((file) => {
    const name = file.replace(/-values\.yaml$/, '');
    return { file, namespace: `ci-${name}`, release: `c-${name}` };
  });
  for (const { file, namespace } of releases) {
    node.kubectl(['create', 'namespace', namespace]);
    prerequisites[file]?.(namespace);
  }
  // Fitted to one test node only: no volume to claim, and requests small enough for all of
  // them at once. What these files vary is the sidecar's side (keys, discovery, TLS, the
  // optional objects), so the gateway is a small Node server answering the health paths
  // the probes ask (through the guard where the file turns it on): ten OpenClaw gateways
  // starting at once took two minutes of the suite, and every other test here runs the real one.
  const gateway =
    "require('node:http').createServer((q, s) => s.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }))).listen(18789, '127.0.0.1')";
  const fit = [
    '--set',
    'gateway.persistence.enabled=false',
    '--set',
    'gateway.resources.requests.cpu=10m',
    '--set',
    'sidecar.resources.requests.cpu=10m',
    '--set',
    'gateway.resources.requests.memory=64Mi',
    '--set-json',
    `gateway.command=${JSON.stringify(['node', '-e', gateway])}`,
    '--set-json',
    `gateway.guard.command=${JSON.stringify(['node', '-e', gateway])}`,
  ];
  const installed = await Promise.allSettled(
    releases.map(({ file, namespace, release }) =>
      node.helmAsync(['install', release, CHART, '-n', namespace, '-f', values(file), ...fit, '--wait', '--timeout', '5m']),
    ),
  );
  expect(
    installed.map((r, i) => [releases[i]!.file, r.status === 'fulfilled' ? 'installed' : String((r as PromiseRejectedResult).reason).slice(0, 600)]),
  ).toEqual(releases.map((r) => [r.file, 'installed']));
  for (const { file, namespace, release } of releases) {
    const pods = runningPods(namespace, `app.kubernetes.io/instance=${release}`);
    expect([file, pods.length]).toEqual([file, 1]);
    const pod = pods[0]!;
    expect([file, pod.status.conditions.find((c) => c.type === 'Ready')?.status]).toEqual([file, 'True']);
    const metrics = await admin(pod, '/metrics');
    expect([file, sample(metrics, 'trusted_proxy_ready'), sample(metrics, 'trusted_proxy_assertion_keys_loaded')]).toEqual([
      file,
      1,
      file === 'existing-secret-values.yaml' ? 2 : 1,
    ]);
    if (file === 'es256-values.yaml') {
      expect(node.kubectl(['-n', namespace, 'logs', pod.metadata.name, '-c', 'gateway'])).toContain(
        'trusted-proxy-sidecar guard: requests on port 18789 need a valid assertion',
      );
    }
  }
}, 600_000);
