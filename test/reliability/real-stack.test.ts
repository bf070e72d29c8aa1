// Attacks through the stack our users run, every part real: Traefik reading the Traefik
// examples from a real API server, oauth2-proxy with the install guide's settings and a
// real OpenID provider, the sidecar process in the "pod" host (trusting Traefik's pod as
// discovered from the same API server, with the chart's RBAC), and recording gateways that
// verify every assertion (inline: on the pod's loopback; forward-auth: on the pod's address,
// where Traefik reaches it around the sidecar). Sessions are real: each user signs in on the
// provider's form. Every attack is shown to have been delivered (the request reached the
// sidecar, or the connection was made) and nothing forged reaches the gateway; each is a
// row of reports/reliability.md.
import { jest } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { recordSection, table } from './report.js';
import { launchChromium } from '../../harness/chromium.js';
import { COMMAND } from '../support/command.js';
import { onJsonLines, startJsonProcess, startRecordingGateway, stopChild, waitForPort, type JsonProcess } from '../support/front-proxies.js';
import { sample, scrape } from '../support/metrics.js';
import { createNetwork, type Host, type TestNetwork } from '../../harness/netns.js';
import {
  INGRESS_DNS,
  INGRESS_HOSTS,
  NAMESPACE,
  PUBLIC_HOST,
  readObjects,
  startRealIngress,
  type K8sObject,
  type RealIngress,
} from '../support/real-ingress.js';
import type { GatewayRecord } from '../support/recording-gateway.js';
import { waitFor } from '../../harness/wait.js';

jest.setTimeout(60_000);

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'traefik');
const PORTS = { sidecar: 8080, admin: 9090, gatewayInline: 18789, gatewayForwardAuth: 18790 } as const;
const USERS = {
  alice: { password: 'alice-pw', email: 'alice@example.com', groups: ['claw-users'] },
  carol: { password: 'carol-pw', email: 'carol@example.com', groups: [] as string[] },
};
const FORGED = {
  'x-auth-request-email': 'bob@example.com',
  'x-auth-request-user': 'bob',
  'x-auth-request-groups': 'claw-admins',
  'x-forwarded-user': 'bob@example.com',
  'x-openclaw-scopes': 'operator.admin',
  'x-trusted-proxy-assertion': 'forged',
};
/** Whatever a client forged must not appear anywhere in what the gateway received. */
const FORGED_VALUES = ['bob', 'claw-admins', 'operator.admin', 'forged', '203.0.113.7'];

let net: TestNetwork;
let dir: string;
let pod: Host;
let rogue: Host;
let ingress: RealIngress;
let sidecar: { child: ChildProcess; logs: Record<string, unknown>[] };
let gateways: { inline: JsonProcess; 'forward-auth': JsonProcess };
const sessions: Record<string, string> = {};
const rows: [string, string, string, string][] = [];
let sequence = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tps-real-stack-'));
  net = await createNetwork(['client', ...INGRESS_HOSTS, 'pod', 'rogue'], { dns: { ...INGRESS_DNS, [`openclaw.${NAMESPACE}.svc.cluster.local`]: 'pod' } });
  pod = net.host('pod');
  rogue = net.host('rogue');
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'k1'), randomBytes(32), { mode: 0o600 });
  const config = join(dir, 'sidecar.json');
  // Written once the provider is up: identity.token names it (docs/install.md's settings).
  const sidecarConfig = (oidc: RealIngress['oidc']) =>
    JSON.stringify({
      listen: { host: '0.0.0.0', port: PORTS.sidecar, shutdownGraceSeconds: 1, allowedOrigins: [`https://${PUBLIC_HOST}`] },
      admin: { host: pod.address, port: PORTS.admin },
      upstream: { url: `http://127.0.0.1:${PORTS.gatewayInline}` },
      trust: { discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] } },
      identity: {
        userHeader: 'x-auth-request-email',
        groupsHeader: 'x-auth-request-groups',
        allowEmailDomains: ['example.com'],
        token: { mode: 'match', issuer: oidc.issuer, audiences: [oidc.clientId], caFile: oidc.caFile },
      },
      assertion: { keysDir },
      gateway: {
        userHeader: 'x-forwarded-user',
        scopesHeader: 'x-openclaw-scopes',
        scopes: { default: ['operator.read'], byGroup: { 'claw-users': ['operator.read', 'operator.write'] } },
      },
      sanitise: { extraPrefixes: ['x-auth-request-'] },
      forwardAuth: { enabled: true, path: '/forward-auth' },
      logging: { level: 'debug' },
    });
  const gateway = (host: string, port: number) => startRecordingGateway(pod, host, port, keysDir);
  gateways = { inline: await gateway('127.0.0.1', PORTS.gatewayInline), 'forward-auth': await gateway(pod.address, PORTS.gatewayForwardAuth) };

  ingress = await startRealIngress({
    net,
    dir,
    users: USERS,
    traefikObjects: readObjects(join(EXAMPLES, 'inline.yaml')),
    services: [
      { name: 'openclaw', ports: [{ name: 'http', port: PORTS.sidecar, host: pod, targetPort: PORTS.sidecar }] },
      { name: 'openclaw-gateway', ports: [{ name: 'http', port: 18789, host: pod, targetPort: PORTS.gatewayForwardAuth }] },
    ],
  });
  // The sidecar trusts Traefik as the chart sets it up: its pod found by label in the
  // namespace "traefik", with the ServiceAccount, Role and RoleBinding of manifests/base.
  const kube = ingress.kube;
  await kube.namespace('traefik');
  const rbac = readObjects(join(process.cwd(), 'manifests', 'base', 'trusted-proxy-sidecar.yaml')).filter((o) =>
    ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind),
  );
  kube.kubectl(['apply', '-f', '-'], rbac.map((o) => JSON.stringify(o)).join('\n'));
  await kube.call('POST', '/api/v1/namespaces/traefik/pods', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'traefik-0', labels: { 'app.kubernetes.io/name': 'traefik' } },
    spec: { containers: [{ name: 'traefik', image: 'traefik:v3.6.12' }] },
  });
  const ingressAddress = net.host('ingress').address;
  await kube.call(
    'PATCH',
    '/api/v1/namespaces/traefik/pods/traefik-0/status',
    { status: { phase: 'Running', podIP: ingressAddress, podIPs: [{ ip: ingressAddress }] } },
    'application/merge-patch+json',
  );
  writeFileSync(config, sidecarConfig(ingress.oidc));
  const env = { ...process.env, ...(await kube.inCluster(NAMESPACE, 'openclaw')) };
  const child = pod.spawn(process.execPath, [COMMAND, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const logs: Record<string, unknown>[] = [];
  onJsonLines(child.stdout!, (line) => logs.push(line));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  sidecar = { child, logs };
  await waitForPort(pod.address, PORTS.sidecar, child, () => stderr);
  await waitFor(async () => (await fetch(`http://${pod.address}:${PORTS.admin}/readyz`)).status === 200, 'the sidecar to sync its trusted source', 30_000);
  for (const [user, { password }] of Object.entries(USERS)) sessions[user] = await ingress.signIn(user, password);
}, 240_000);

afterAll(async () => {
  if (rows.length > 0 && expect.getState().suppressedErrors.length === 0) {
    recordSection(
      'real-stack',
      `Traefik v3.6.12 (Kubernetes CRD provider on a real API server, objects from \`manifests/examples/traefik/\`), oauth2-proxy v7.15.6 ` +
        `(docs/install.md's settings) with an OpenID provider (oidc-provider), the sidecar process trusting Traefik's pod as discovered from the API server, ` +
        `and recording gateways that verify every assertion. ` +
        `Every attack was delivered; "gateway saw" is what reached the gateway.\n\n` +
        table(['attack', 'topology', 'delivered', 'gateway saw'], rows),
    );
  }
  await stopChild(sidecar?.child);
  for (const g of Object.values(gateways ?? {})) await g.stop();
  await ingress?.stop();
  await net?.teardown();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** A request through Traefik with a fresh id in its query, so its gateway record can be found. */
async function through(path: string, headers: Record<string, string>) {
  const id = `r${++sequence}`;
  const sep = path.includes('?') ? '&' : '?';
  const res = await ingress.request(`${path}${sep}id=${id}`, headers);
  return { ...res, id };
}

/** The gateway's record of the request with this id (bounded wait), or undefined if none came. */
async function arrived(mode: 'inline' | 'forward-auth', id: string, expectArrival = true): Promise<GatewayRecord | undefined> {
  const lookup = (m: 'inline' | 'forward-auth') => (gateways[m].lines as unknown as GatewayRecord[]).find((r) => r.url.includes(`id=${id}`));
  if (!expectArrival) return lookup(mode);
  return waitFor(() => lookup(mode), `the ${mode} gateway to record ${id}`, 5000).catch((err: Error) => {
    const other = lookup(mode === 'inline' ? 'forward-auth' : 'inline');
    throw new Error(`${err.message}${other ? ` (the other gateway recorded it: ${JSON.stringify(other)})` : ''}\n${ingress.output().slice(-3000)}`);
  });
}

/** Header values by lower-cased name, as the gateway received them. */
function headersOf(record: GatewayRecord): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < record.rawHeaders.length; i += 2) {
    const name = record.rawHeaders[i]!.toLowerCase();
    map.set(name, [...(map.get(name) ?? []), record.rawHeaders[i + 1]!]);
  }
  return map;
}

/**
 * Opaque values, left out of the search for forged words: the session cookie is random
 * base64 that can hold "bob" by chance (one CI run's did), and the assertion is checked by
 * verifying it (its sub, above).
 */
const OPAQUE = new Set(['cookie', 'x-trusted-proxy-assertion']);

function expectNothingForged(record: GatewayRecord): void {
  const text = record.rawHeaders.filter((_, i) => i % 2 === 1 && !OPAQUE.has(record.rawHeaders[i - 1]!.toLowerCase())).join('\n');
  for (const value of FORGED_VALUES) expect(text).not.toContain(value);
  for (const name of headersOf(record).keys()) expect(name).not.toMatch(/^x[_.]|[_.]auth|_request|\.request/);
}

/** How many header lines the sidecar stripped that this protected name covers (itself or an alias). */
async function strippedCount(header: string): Promise<number> {
  return sample(await scrape(`http://${pod.address}:${PORTS.admin}`), 'trusted_proxy_headers_stripped_total', { header });
}

async function applyExample(file: string, edit: (objects: K8sObject[]) => void = () => undefined): Promise<K8sObject[]> {
  const objects = readObjects(join(EXAMPLES, file));
  edit(objects);
  await ingress.apply(objects);
  return objects;
}

function middleware(objects: K8sObject[], name: string): Record<string, unknown> {
  const m = objects.find((o) => o.kind === 'Middleware' && o.metadata.name === name);
  if (!m) throw new Error(`no Middleware ${name}`);
  return m['spec'].forwardAuth as Record<string, unknown>;
}

describe("inline: manifests/examples/traefik/inline.yaml (the chart's Traefik objects)", () => {
  test("a signed-in user reaches the gateway through Traefik and the sidecar, with the sidecar's identity and a verifying assertion", async () => {
    const res = await through('/hello', { cookie: sessions['alice']! });
    expect(res.status).toBe(200);
    const record = (await arrived('inline', res.id))!;
    const h = headersOf(record);
    expect(h.get('x-forwarded-user')).toEqual(['alice@example.com']);
    expect(h.get('x-openclaw-scopes')).toEqual(['operator.read,operator.write']);
    expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com', htm: 'GET' });
    // Trusted because the API server lists Traefik's pod, the sidecar's only trusted source.
    const decision = await waitFor(() => sidecar.logs.find((l) => l['msg'] === 'allowed' && l['path'] === '/hello'), 'the decision log', 5000);
    expect(decision['trustedBy']).toEqual([expect.stringMatching(/^pods:traefik\//)]);
  });

  test('without a session Traefik sends the browser to sign in, and nothing reaches the sidecar or the gateway', async () => {
    const before = sidecar.logs.length;
    const res = await through('/private', {});
    expect(res.status).toBe(302);
    expect(res.headers['location']).toMatch(/^https:\/\/idp\.example\.com\/auth\?/);
    expect(await arrived('inline', res.id, false)).toBeUndefined();
    expect(sidecar.logs.slice(before).filter((l) => JSON.stringify(l).includes(res.id))).toEqual([]);
    rows.push(['no session', 'inline', `302 to ${new URL(String(res.headers['location'])).host}`, 'nothing']);
  });

  test('forged identity, scopes and assertion headers from a real browser never reach the gateway', async () => {
    let browser: Browser | undefined;
    try {
      browser = await launchChromium(net.host('client'), dir, ingress.chromiumArgs);
      const context = await browser.newContext({ extraHTTPHeaders: FORGED });
      await context.addCookies(
        sessions['alice']!.split('; ').map((pair) => ({
          name: pair.slice(0, pair.indexOf('=')),
          value: pair.slice(pair.indexOf('=') + 1),
          domain: PUBLIC_HOST,
          path: '/',
          secure: true,
          httpOnly: true,
        })),
      );
      const page = await context.newPage();
      const id = `browser${++sequence}`;
      const res = await page.goto(`https://${PUBLIC_HOST}/page?id=${id}`);
      expect(new URL(res!.url()).host).toBe(PUBLIC_HOST);
      expect(res!.status()).toBe(200);
      const record = (await arrived('inline', id))!;
      expect(headersOf(record).get('x-forwarded-user')).toEqual(['alice@example.com']);
      expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com' });
      expectNothingForged(record);
      rows.push([
        'forged identity, groups, scopes, assertion headers from Chromium',
        'inline',
        'request signed in as alice',
        'alice, her scopes, a fresh assertion',
      ]);
    } finally {
      await browser?.close();
    }
  });

  test('`_` and `.` aliases of identity headers pass Traefik and are stripped by the sidecar', async () => {
    const aliases = {
      X_Auth_Request_Email: 'bob@example.com',
      'X.Auth.Request.Groups': 'claw-admins',
      X_Forwarded_User: 'bob',
      'x-openclaw_scopes': 'operator.admin',
    };
    const before = await strippedCount('x-auth-request-email');
    const res = await through('/aliases', { cookie: sessions['alice']!, ...aliases });
    expect(res.status).toBe(200);
    const record = (await arrived('inline', res.id))!;
    expect(headersOf(record).get('x-forwarded-user')).toEqual(['alice@example.com']);
    expectNothingForged(record);
    // Delivered: the sidecar stripped two lines the email header covers, Traefik's copy of
    // oauth2-proxy's answer and the client's alias (a request without one strips one).
    const stripped = await waitFor(
      async () => ((await strippedCount('x-auth-request-email')) - before >= 2 ? (await strippedCount('x-auth-request-email')) - before : undefined),
      'the sidecar to count the stripped alias',
      5000,
    );
    expect(stripped).toBe(2);
    rows.push(['`_` and `.` aliases of the identity headers', 'inline', 'Traefik passed them on; the sidecar stripped them', 'alice only']);
  });

  test('a forged X-Forwarded-For never reaches the gateway', async () => {
    const res = await through('/xff', {
      cookie: sessions['alice']!,
      'x-forwarded-for': '203.0.113.7',
      'x-real-ip': '203.0.113.7',
      forwarded: 'for=203.0.113.7',
    });
    expect(res.status).toBe(200);
    const record = (await arrived('inline', res.id))!;
    expectNothingForged(record);
    rows.push([
      'forged `X-Forwarded-For`, `X-Real-IP`, `Forwarded`',
      'inline',
      'request signed in as alice',
      `X-Forwarded-For: ${headersOf(record).get('x-forwarded-for')?.join(', ')}`,
    ]);
  });

  test('a user oauth2-proxy admits with no groups cannot add groups by sending the groups header', async () => {
    const res = await through('/groups', { cookie: sessions['carol']!, 'x-auth-request-groups': 'claw-users' });
    expect(res.status).toBe(200);
    const record = (await arrived('inline', res.id))!;
    // Traefik deletes every authResponseHeaders name before copying oauth2-proxy's answer.
    expect(headersOf(record).get('x-openclaw-scopes')).toEqual(['operator.read']);
    expect(record.assertion).toMatchObject({ verified: true, sub: 'carol@example.com' });
    rows.push(['a groupless user sends `X-Auth-Request-Groups: claw-users`', 'inline', 'request signed in as carol', 'carol with the default scopes only']);
  });

  test("a compromised Traefik pod naming another user is refused by the token check, even with alice's real ID token", async () => {
    // Alice's ID token, as oauth2-proxy hands it to Traefik for her session.
    const auth = await ingress.request('/oauth2/auth', { cookie: sessions['alice']! });
    expect(auth.status).toBe(202);
    const token = String(auth.headers['authorization']);
    expect(token).toMatch(/^Bearer eyJ/);
    const traefikPod = net.host('ingress');
    const direct = (id: string, extra: string[]) =>
      traefikPod.exec('curl', [
        '-s',
        '--max-time',
        '5',
        '-w',
        '\\n%{http_code}',
        '-H',
        `host: ${PUBLIC_HOST}`,
        '-H',
        'x-auth-request-email: bob@example.com',
        '-H',
        'x-auth-request-groups: claw-admins',
        ...extra,
        `http://${pod.address}:${PORTS.sidecar}/direct?id=${id}`,
      ]);
    expect(direct('pod1', []).split('\n')).toEqual(['{"error":"identity_token_missing"}', '401']);
    expect(direct('pod2', ['-H', `authorization: ${token}`]).split('\n')).toEqual(['{"error":"identity_token_mismatch"}', '401']);
    // The same address with alice's own identity and token passes: the refusals were the check's.
    const own = traefikPod.exec('curl', [
      '-s',
      '--max-time',
      '5',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `host: ${PUBLIC_HOST}`,
      '-H',
      'x-auth-request-email: alice@example.com',
      '-H',
      'x-auth-request-groups: claw-users',
      '-H',
      `authorization: ${token}`,
      `http://${pod.address}:${PORTS.sidecar}/direct?id=pod3`,
    ]);
    expect(own).toBe('200');
    expect(await arrived('inline', 'pod1', false)).toBeUndefined();
    expect(await arrived('inline', 'pod2', false)).toBeUndefined();
    const record = (await arrived('inline', 'pod3'))!;
    expect(headersOf(record).has('authorization')).toBe(false);
    rows.push(["Traefik's own (trusted) address names bob, without a provider token", 'inline', '401 identity_token_missing', 'nothing']);
    rows.push(["Traefik's own address names bob with alice's real ID token", 'inline', '401 identity_token_mismatch', 'nothing']);
  });

  test("another pod's namespace connecting straight to the sidecar is refused, and cannot reach the gateway port at all", async () => {
    const viaSidecar = rogue.exec('curl', [
      '-s',
      '--max-time',
      '5',
      '-w',
      '\\n%{http_code}',
      ...Object.entries(FORGED).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
      '-H',
      `cookie: ${sessions['alice']}`,
      `http://${pod.address}:${PORTS.sidecar}/direct?id=rogue1`,
    ]);
    expect(viaSidecar.split('\n')).toEqual(['{"error":"untrusted_source"}', '403']);
    const viaGateway = rogue.exec('sh', [
      '-c',
      `curl -s --max-time 5 -o /dev/null -w '%{http_code} %{exitcode}' http://${pod.address}:${PORTS.gatewayInline}/direct?id=rogue2; true`,
    ]);
    expect(viaGateway).toBe('000 7'); // connection refused: the gateway listens on the pod's loopback
    expect(await arrived('inline', 'rogue1', false)).toBeUndefined();
    rows.push(['another namespace connects to the sidecar with forged headers and a stolen session cookie', 'inline', '403 untrusted_source', 'nothing']);
    rows.push(["another namespace connects to the gateway's port", 'inline', 'connection refused (loopback only)', 'nothing']);
  });
});

describe('forward-auth: manifests/examples/traefik/forward-auth.yaml', () => {
  let captured = '';

  beforeAll(async () => {
    await applyExample('forward-auth.yaml');
  });

  test("a signed-in user reaches the gateway with the sidecar's grant headers and an assertion for this request", async () => {
    const res = await through('/fa/hello', { cookie: sessions['alice']! });
    expect(res.status).toBe(200);
    const record = (await arrived('forward-auth', res.id))!;
    expect(headersOf(record).get('x-forwarded-user')).toEqual(['alice@example.com']);
    expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com', htm: 'GET', htu: `https://${PUBLIC_HOST}/fa/hello?id=${res.id}` });
    // The ID token the sidecar checked went no further.
    expect(headersOf(record).has('authorization')).toBe(false);
    captured = headersOf(record).get('x-trusted-proxy-assertion')![0]!;
  });

  test("forged grant headers, including a real assertion captured earlier, are replaced by the sidecar's", async () => {
    const res = await through('/fa/forged', { cookie: sessions['alice']!, ...FORGED, 'x-trusted-proxy-assertion': captured });
    expect(res.status).toBe(200);
    const record = (await arrived('forward-auth', res.id))!;
    const h = headersOf(record);
    expect(h.get('x-trusted-proxy-assertion')).toHaveLength(1);
    expect(h.get('x-trusted-proxy-assertion')![0]).not.toBe(captured);
    expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com' });
    expectNothingForged(record);
    rows.push(['forged grant headers and a captured assertion', 'forward-auth', 'request signed in as alice', "the sidecar's headers only"]);
  });

  test('`_` and `.` aliases reach the gateway around the sidecar, which is why it must take identity from the verified assertion', async () => {
    const res = await through('/fa/aliases', { cookie: sessions['alice']!, X_Forwarded_User: 'bob' });
    expect(res.status).toBe(200);
    const record = (await arrived('forward-auth', res.id))!;
    expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com' });
    const alias = [...headersOf(record).keys()].filter((k) => k.includes('_'));
    rows.push([
      '`_` alias of the user header',
      'forward-auth',
      'request signed in as alice',
      `assertion: alice; the alias ${alias.length > 0 ? 'arrives beside it (Traefik passes it)' : 'does not arrive'}`,
    ]);
  });

  test("trustForwardHeader: true: a client's X-Forwarded-Uri cannot make the sidecar sign another request", async () => {
    await applyExample('forward-auth.yaml', (o) => {
      middleware(o, 'openclaw-forward-auth')['trustForwardHeader'] = true;
    });
    const res = await through('/fa/real', {
      cookie: sessions['alice']!,
      'x-forwarded-uri': '/fa/admin',
      'x-forwarded-method': 'DELETE',
      'x-forwarded-host': 'evil.example.com',
    });
    const record = (await arrived('forward-auth', res.id))!;
    if (record.assertion?.verified) {
      // Traefik's entry point replaced the client's X-Forwarded-* (it trusts no client IP):
      // the assertion names the real request.
      expect(record.assertion).toMatchObject({ htm: 'GET', htu: `https://${PUBLIC_HOST}/fa/real?id=${res.id}` });
      rows.push([
        '`trustForwardHeader: true`, forged `X-Forwarded-Uri`/`-Method`/`-Host`',
        'forward-auth',
        'request signed in as alice',
        'an assertion for the real request (the entry point dropped the forged headers)',
      ]);
    } else {
      expect(res.status).toBe(401);
      rows.push([
        '`trustForwardHeader: true`, forged `X-Forwarded-Uri`/`-Method`/`-Host`',
        'forward-auth',
        'request signed in as alice',
        `refused by its verification (${JSON.stringify(record.assertion)})`,
      ]);
    }
  });

  test("authRequestHeaders: the sidecar needs only the identity headers, and a client's others never reach it", async () => {
    await applyExample('forward-auth.yaml', (o) => {
      // The identity headers, and the ID token identity.token checks against them.
      middleware(o, 'openclaw-forward-auth')['authRequestHeaders'] = ['X-Auth-Request-Email', 'X-Auth-Request-Groups', 'Authorization'];
    });
    const res = await through('/fa/limited', { cookie: sessions['alice']!, 'x-openclaw-scopes': 'operator.admin' });
    expect(res.status).toBe(200);
    const record = (await arrived('forward-auth', res.id))!;
    expect(record.assertion).toMatchObject({ verified: true, sub: 'alice@example.com', htu: `https://${PUBLIC_HOST}/fa/limited?id=${res.id}` });
    expect(headersOf(record).get('x-openclaw-scopes')).toEqual(['operator.read,operator.write']);
    rows.push(['`authRequestHeaders` limited to the identity headers, forged scopes', 'forward-auth', 'request signed in as alice', "the sidecar's scopes"]);
  });

  test("maxResponseBodySize: the sidecar's answers fit a small limit, allowed and refused", async () => {
    await applyExample('forward-auth.yaml', (o) => {
      middleware(o, 'openclaw-forward-auth')['maxResponseBodySize'] = 64;
    });
    const allowed = await through('/fa/small', { cookie: sessions['alice']! });
    expect(allowed.status).toBe(200);
    expect((await arrived('forward-auth', allowed.id))!.assertion).toMatchObject({ verified: true });
    // A refusal's body (here a page of another site calling with alice's cookie) fits too,
    // and reaches the client as the sidecar wrote it.
    const refused = await through('/fa/cross-site', { cookie: sessions['alice']!, origin: 'https://evil.example.net' });
    expect([refused.status, refused.body]).toEqual([403, '{"error":"origin_not_allowed"}']);
    expect(await arrived('forward-auth', refused.id, false)).toBeUndefined();
    rows.push([
      '`maxResponseBodySize: 64`; a cross-site `Origin` with a valid session',
      'forward-auth',
      'both reached the sidecar',
      "alice's request; the cross-site one got the sidecar's 403 and reached nothing",
    ]);
  });

  test("another namespace reaching the gateway's port around the sidecar is refused by the gateway's verification, even with a captured assertion", async () => {
    const out = rogue.exec('curl', [
      '-s',
      '--max-time',
      '5',
      '-w',
      '\\n%{http_code}',
      '-H',
      `host: ${PUBLIC_HOST}`,
      '-H',
      'x-forwarded-proto: https',
      '-H',
      `x-trusted-proxy-assertion: ${captured}`,
      '-H',
      'x-forwarded-user: alice@example.com',
      `http://${pod.address}:${PORTS.gatewayForwardAuth}/fa/hello?id=rogue3`,
    ]);
    expect(out.split('\n').at(-1)).toBe('401');
    const record = (await arrived('forward-auth', 'rogue3'))!;
    expect(record.assertion).toMatchObject({ verified: false });
    rows.push([
      "another namespace replays a captured assertion at the gateway's port",
      'forward-auth',
      'the request reached the gateway',
      `refused: ${(record.assertion as { error: string }).error}`,
    ]);
  });
});
