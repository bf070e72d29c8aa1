// Trust by certificate with the real Traefik: manifests/examples/traefik/mtls.yaml (the
// chart's Traefik objects with a ServersTransport) applied to a real API server, Traefik
// reaching the sidecar over HTTPS with its client certificate from a Secret, oauth2-proxy and
// the OpenID provider as in docs/install.md. The sidecar runs with mtls-values.yaml's trust
// (require: both): Traefik's address and its certificate. The same certificate from another
// host, and Traefik's host without it, are refused.
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { COMMAND } from '../../support/command.js';
import { onJsonLines, startJsonProcess, startRecordingGateway, stopChild, waitForPort, type JsonProcess } from '../../support/front-proxies.js';
import { createNetwork, type Host, type TestNetwork } from '../../../harness/netns.js';
import { INGRESS_DNS, INGRESS_HOSTS, NAMESPACE, PUBLIC_HOST, readObjects, startRealIngress, type RealIngress } from '../../support/real-ingress.js';
import { makeClientCert, makeTestCa } from '../../../harness/test-ca.js';
import { waitFor } from '../../../harness/wait.js';

jest.setTimeout(60_000);

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'traefik');
const PORTS = { sidecar: 8080, admin: 9090, gateway: 18789 } as const;
const USERS = { alice: { password: 'alice-pw', email: 'alice@example.com', groups: ['claw-users'] } };
/** The name the ServersTransport checks the sidecar's certificate for (the Service's DNS name). */
const SIDECAR_NAME = `openclaw.${NAMESPACE}.svc`;

let net: TestNetwork;
let dir: string;
let pod: Host;
let rogue: Host;
let ingressHost: Host;
let ingress: RealIngress;
let gateway: JsonProcess;
let sidecar: { stop(): Promise<void>; logs: Record<string, unknown>[] };
let certs: { traefik: { certFile: string; keyFile: string } };
let cookie: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tps-traefik-mtls-'));
  net = await createNetwork(['client', ...INGRESS_HOSTS, 'pod', 'rogue'], { dns: { ...INGRESS_DNS, [`openclaw.${NAMESPACE}.svc.cluster.local`]: 'pod' } });
  pod = net.host('pod');
  rogue = net.host('rogue');
  ingressHost = net.host('ingress');
  // The sidecar's CA, serving certificate and Traefik's client certificate, as cert-manager
  // would issue them into the Secrets the example names.
  const pki = join(dir, 'pki');
  mkdirSync(pki);
  const ca = makeTestCa(pki, [SIDECAR_NAME]);
  const mtls = parse(readFileSync(join(EXAMPLES, 'mtls-values.yaml'), 'utf8')) as { sidecar: { config: { trust: Record<string, unknown> } } };
  const dnsName = (mtls.sidecar.config.trust['clientCertificates'] as { dnsNames: string[] }).dnsNames[0]!;
  certs = { traefik: makeClientCert(pki, 'traefik', '/CN=traefik', [`DNS:${dnsName}`]) };

  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'k1'), randomBytes(32), { mode: 0o600 });
  gateway = await startRecordingGateway(pod, '127.0.0.1', PORTS.gateway, keysDir);

  // The example's objects, and the Secrets it names (the Secret kind passes through the
  // same apply as the Traefik objects).
  const secret = (name: string, data: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NAMESPACE },
    stringData: data,
  });
  ingress = await startRealIngress({
    net,
    dir,
    users: USERS,
    traefikObjects: [
      secret('openclaw-sidecar-tls', {
        'tls.crt': readFileSync(ca.certFile, 'utf8'),
        'tls.key': readFileSync(ca.keyFile, 'utf8'),
        'ca.crt': readFileSync(ca.caFile, 'utf8'),
      }),
      secret('traefik-client-tls', { 'tls.crt': readFileSync(certs.traefik.certFile, 'utf8'), 'tls.key': readFileSync(certs.traefik.keyFile, 'utf8') }),
      ...readObjects(join(EXAMPLES, 'mtls.yaml')),
    ],
    services: [{ name: 'openclaw', ports: [{ name: 'http', port: PORTS.sidecar, host: pod, targetPort: PORTS.sidecar }] }],
  });

  // The sidecar: the Secret's files where the chart mounts them, mtls-values.yaml's trust,
  // and Traefik's address (discovery would find the same).
  const config = join(dir, 'sidecar.json');
  writeFileSync(
    config,
    JSON.stringify({
      listen: { host: '0.0.0.0', port: PORTS.sidecar, shutdownGraceSeconds: 1, certFile: ca.certFile, keyFile: ca.keyFile, clientCAFile: ca.caFile },
      admin: { host: pod.address, port: PORTS.admin },
      upstream: { url: `http://127.0.0.1:${PORTS.gateway}` },
      trust: { ...mtls.sidecar.config.trust, cidrs: [`${ingressHost.address}/32`] },
      identity: { userHeader: 'x-auth-request-email', groupsHeader: 'x-auth-request-groups', allowEmailDomains: ['example.com'] },
      assertion: { keysDir },
      sanitise: { extraPrefixes: ['x-auth-request-'] },
      logging: { level: 'debug' },
    }),
  );
  const child = pod.spawn(process.execPath, [COMMAND, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  onJsonLines(child.stdout!, (line) => logs.push(line));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  sidecar = { logs, stop: () => stopChild(child) };
  await waitForPort(pod.address, PORTS.sidecar, child, () => stderr);
  cookie = await ingress.signIn('alice', USERS.alice.password);
}, 240_000);

afterAll(async () => {
  await sidecar?.stop();
  if (gateway) await stopChild(gateway.child);
  await ingress?.stop();
  await net?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a signed-in user reaches the gateway: Traefik presented its certificate from the Secret, over HTTPS', async () => {
  const before = gateway.lines.length;
  // Traefik reads the ServersTransport's Secrets on its own schedule: poll, bounded.
  await waitFor(async () => (await ingress.request('/x', { cookie })).status === 200, 'Traefik to reach the sidecar with its certificate', 30_000, 200);
  const seen = gateway.lines.slice(before).at(-1)!;
  expect(seen).toMatchObject({ kind: 'request', assertion: { verified: true, sub: 'alice@example.com' } });
  const allowed = sidecar.logs.filter((l) => l['msg'] === 'allowed').at(-1)!;
  expect(allowed['trustedBy']).toEqual(['static', 'certificate dns:traefik.traefik.svc']);
});

test("Traefik's certificate from another host, and Traefik's host without it, are refused", async () => {
  const before = gateway.lines.length;
  const curl = (host: Host, ...args: string[]) =>
    host.exec('curl', [
      '-s',
      '--max-time',
      '10',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      join(dir, 'pki', 'ca.crt'),
      '--resolve',
      `${SIDECAR_NAME}:${PORTS.sidecar}:${pod.address}`,
      '-H',
      'x-auth-request-email: alice@example.com',
      ...args,
      `https://${SIDECAR_NAME}:${PORTS.sidecar}/x`,
    ]);
  expect(curl(rogue, '--cert', certs.traefik.certFile, '--key', certs.traefik.keyFile)).toBe('403');
  expect(curl(ingressHost)).toBe('403');
  expect(gateway.lines.length).toBe(before);
  // The sidecar logs asynchronously: wait (bounded) for both lines.
  const refused = () => sidecar.logs.filter((l) => l['msg'] === 'refused').map((l) => [l['peer'], l['detail']]);
  await waitFor(() => refused().length >= 2, 'both refusals logged', 5000, 20);
  expect(refused()).toEqual(
    expect.arrayContaining([
      [rogue.address, expect.stringContaining('not_in_trusted_set')],
      [ingressHost.address, 'certificate_missing'],
    ]),
  );
});
