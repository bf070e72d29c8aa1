// Real Caddy and real nginx in front of the real sidecar process, each on its own test
// host: "ingress" (the front proxies and the session service), "pod" (the sidecar and the
// recording gateways) and "rogue" (an attacker). Every case asserts what the gateway got.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { scrape, sample } from '../../support/metrics.js';
import type { Host } from '../../../harness/netns.js';
import { rawRequest, statusOf } from '../../support/raw-client.js';
import type { FrontProxySite, JsonProcess } from '../../support/front-proxies.js';
import { PORTS, startTopology, type Topology } from '../../support/topology.js';
import type { GatewayRecord } from '../../support/recording-gateway.js';
import { waitFor } from '../../../harness/wait.js';

const { sidecar: SIDECAR_PORT, admin: ADMIN_PORT, gatewayForwardAuth: GATEWAY_FA_PORT } = PORTS;
const ALICE = 'alice@example.com';
const ALICE_SCOPES = 'operator.read,operator.write';

type Proxy = 'caddy' | 'nginx';
const SITES: { proxy: Proxy; mode: FrontProxySite['mode']; port: number }[] = [
  { proxy: 'caddy', mode: 'inline', port: 8081 },
  { proxy: 'caddy', mode: 'forward-auth', port: 8082 },
  { proxy: 'nginx', mode: 'inline', port: 8083 },
  { proxy: 'nginx', mode: 'forward-auth', port: 8084 },
];

let topology: Topology | undefined;
let ingress: Host;
let pod: Host;
let rogue: Host;
let gateways: Record<FrontProxySite['mode'], JsonProcess>;
let cookies: Record<string, string>;

beforeAll(async () => {
  const sitesOf = (proxy: Proxy) => SITES.filter((s) => s.proxy === proxy).map((s): [FrontProxySite['mode'], number] => [s.mode, s.port]);
  topology = await startTopology({
    name: 'fa-e2e',
    users: {
      alice: { password: 'alice-pw', email: ALICE, groups: ['operators'] },
      bob: { password: 'bob-pw', email: 'bob@example.com', groups: [] },
    },
    sidecar: {
      identity: { allowGroups: ['operators'] },
      gateway: { scopes: { default: ['operator.read'], byGroup: { operators: ['operator.read', 'operator.write'] } } },
    },
    sites: { caddy: sitesOf('caddy'), nginx: sitesOf('nginx') },
  });
  ({ ingress, pod, rogue, gateways, cookies } = topology);
}, 60_000);

afterAll(async () => {
  await topology?.teardown();
}, 30_000);

// ------------------------------------------------------------------------------ helpers

interface Reply {
  status: number;
  headers: Map<string, string[]>;
  body: string;
}

function parseReply(text: string): Reply {
  const end = text.indexOf('\r\n\r\n');
  const head = end === -1 ? text : text.slice(0, end);
  const headers = new Map<string, string[]>();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return { status: statusOf(text), headers, body: end === -1 ? '' : text.slice(end + 4) };
}

/** A client of the real front proxy (from the test's own side of the bridge), raw bytes. */
async function viaProxy(port: number, target: string, lines: string[] = [], method = 'GET', body = ''): Promise<Reply> {
  const extra = body ? [`content-length: ${Buffer.byteLength(body)}`, 'content-type: text/plain'] : [];
  const head = [`${method} ${target} HTTP/1.1`, `host: ${ingress.address}:${port}`, ...lines, ...extra, 'connection: close'];
  return parseReply(await rawRequest(port, `${head.join('\r\n')}\r\n\r\n${body}`, ingress.address, 5000));
}

/** curl from inside a test host: the request comes from that host's own address. */
function curlFrom(host: Host, url: string, headers: string[], method = 'GET'): Promise<Reply> {
  const args = ['netns', 'exec', host.name, 'curl', '-si', '--max-time', '5', '-X', method, ...headers.flatMap((h) => ['-H', h]), url];
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'latin1', timeout: 10_000 }, (err, stdout) => {
      if (err && !stdout) reject(err);
      else resolve(parseReply(stdout));
    });
  });
}

function values(rec: GatewayRecord, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) if (rec.rawHeaders[i]!.toLowerCase() === name) out.push(rec.rawHeaders[i + 1]!);
  return out;
}

const recordsOf = (mode: FrontProxySite['mode']) => gateways[mode].lines as unknown as GatewayRecord[];
const counts = () => [recordsOf('inline').length, recordsOf('forward-auth').length];

/** The records a gateway receives from now on (waits, bounded, for `n` of them). */
function watch(mode: FrontProxySite['mode']) {
  const from = recordsOf(mode).length;
  return async (n: number): Promise<GatewayRecord[]> => {
    await waitFor(() => recordsOf(mode).length >= from + n, `${n} record(s) at the ${mode} gateway`);
    return recordsOf(mode).slice(from);
  };
}

/** Nothing reached either gateway since `before` (counts()): every line written before a marker sent now has arrived. */
async function expectNothingReachedGateways(before: number[]): Promise<void> {
  const end = await topology!.gatewayLinesEnd();
  expect([end.inline, end['forward-auth']]).toEqual(before);
}

/** What the gateway saw is exactly what the sidecar issued for this user and request. */
function expectSidecarValues(rec: GatewayRecord, method: string, path: string): void {
  expect(rec.method).toBe(method);
  expect(rec.url).toBe(path);
  expect(values(rec, 'x-forwarded-user')).toEqual([ALICE]);
  expect(values(rec, 'x-openclaw-scopes')).toEqual([ALICE_SCOPES]);
  expect(values(rec, 'x-trusted-proxy-assertion')).toHaveLength(1);
  expect(rec.assertion).toMatchObject({ verified: true, sub: ALICE, htm: method });
  expect((rec.assertion as { htu: string }).htu.endsWith(path)).toBe(true);
  expect(JSON.stringify(rec.rawHeaders)).not.toMatch(/FORGED/i);
}

const session = (user: string) => `cookie: _oauth2_proxy=${cookies[user]}`;

// ------------------------------------------------------------------------ through a proxy

describe.each(SITES)('$proxy in $mode mode', ({ proxy, mode, port }) => {
  test("an allowed user reaches the gateway with the sidecar's identity, scopes and a verifying assertion", async () => {
    const next = watch(mode);
    const get = await viaProxy(port, '/api/items?page=2', [session('alice')]);
    expect(get.status).toBe(200);
    const post = await viaProxy(port, '/api/items', [session('alice')], 'POST', 'hello');
    expect(post.status).toBe(200);
    const [first, second] = await next(2);
    expectSidecarValues(first!, 'GET', '/api/items?page=2');
    expectSidecarValues(second!, 'POST', '/api/items');
    expect(post.body).toContain('echo POST /api/items 5');
  });

  test('a signed-in user outside the allow list is refused and nothing reaches the gateway', async () => {
    const before = counts();
    const reply = await viaProxy(port, '/api/items', [session('bob')]);
    expect(reply.status).toBe(403);
    // Caddy passes the sidecar's JSON on; nginx answers with its own 403 page.
    if (proxy === 'caddy') expect(reply.body).toContain('user_not_allowed');
    await expectNothingReachedGateways(before);
  });

  test("without a session the auth service's 401 comes back and nothing reaches the gateway", async () => {
    const before = counts();
    const reply = await viaProxy(port, '/api/items', []);
    expect(reply.status).toBe(401);
    const forged = await viaProxy(port, '/api/items', [
      `x-auth-request-email: ${ALICE}`,
      'x-auth-request-groups: operators',
      'x-trusted-proxy-assertion: FORGED',
    ]);
    expect(forged.status).toBe(401);
    await expectNothingReachedGateways(before);
  });

  test('a WebSocket through the proxy echoes, and the upgrade the gateway saw carries the assertion', async () => {
    const next = watch(mode);
    const ws = new WebSocket(`ws://${ingress.address}:${port}/ws/chat?room=1`, { headers: { cookie: `_oauth2_proxy=${cookies['alice']}` } });
    try {
      const echoed = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('ping through the proxy'));
        ws.once('message', (data) => resolve(String(data)));
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
      });
      expect(echoed).toBe('ping through the proxy');
    } finally {
      ws.terminate();
    }
    const [upgrade] = await next(1);
    expect(upgrade!.kind).toBe('upgrade');
    expectSidecarValues(upgrade!, 'GET', '/ws/chat?room=1');
  });

  test("forged identity, assertion and scopes headers from a client: the gateway sees only the sidecar's values", async () => {
    const next = watch(mode);
    const reply = await viaProxy(port, '/api/forged', [
      session('alice'),
      'x-auth-request-email: FORGED-admin@example.com',
      'x-auth-request-groups: FORGED-admins',
      'x-auth-request-user: FORGED-admin',
      'x-trusted-proxy-assertion: FORGED.assertion.value',
      'x-forwarded-user: FORGED-admin',
      'x-openclaw-scopes: FORGED.operator.admin',
    ]);
    expect(reply.status).toBe(200);
    const [rec] = await next(1);
    expectSidecarValues(rec!, 'GET', '/api/forged');
  });

  // Caddy honours Connection and drops the nominated header before it asks (fail closed);
  // nginx ignores Connection and sets the identity itself.
  test('Connection naming the identity header never lets a forged identity through', async () => {
    const before = counts();
    const next = watch(mode);
    const reply = await viaProxy(port, '/api/conn', [
      session('alice'),
      'x-auth-request-email: FORGED-admin@example.com',
      'connection: close, X-Auth-Request-Email',
    ]);
    if (proxy === 'caddy') {
      expect(reply.status).toBe(401);
      await expectNothingReachedGateways(before);
    } else {
      expect(reply.status).toBe(200);
      expectSidecarValues((await next(1))[0]!, 'GET', '/api/conn');
    }
  });
});

// ------------------------------------------------------------------------ the rogue host

describe('a rogue host talking to the sidecar directly', () => {
  const FORGED = [
    `X-Auth-Request-Email: ${ALICE}`,
    'X-Auth-Request-Groups: operators',
    'X-Trusted-Proxy-Assertion: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.FORGED',
    `X-Forwarded-User: ${ALICE}`,
    'x-openclaw-scopes: operator.admin',
  ];
  const cases: [string, string[]][] = [
    ['forged identity and assertion headers', FORGED],
    ['underscore aliases', [`X_Auth_Request_Email: ${ALICE}`, 'X_Auth_Request_Groups: operators', `X_Forwarded_User: ${ALICE}`]],
    ['dot aliases', [`x.auth.request.email: ${ALICE}`, 'x.auth.request.groups: operators', `x.forwarded.user: ${ALICE}`]],
    ['a forged X-Forwarded-For naming the ingress', [...FORGED, `X-Forwarded-For: ${'INGRESS'}`, `X-Real-IP: ${'INGRESS'}`, `Forwarded: for=${'INGRESS'}`]],
  ];
  test.each(cases)('%s: refused on every path and method, nothing reaches a gateway', async (_what, forged) => {
    const before = counts();
    const headers = forged.map((h) => h.replace(/INGRESS/g, ingress.address));
    for (const [method, path] of [
      ['GET', '/api/items'],
      ['POST', '/api/items'],
      ['GET', '/forward-auth'],
    ] as const) {
      const reply = await curlFrom(
        rogue,
        `http://${pod.address}:${SIDECAR_PORT}${path}`,
        [...headers, 'X-Forwarded-Method: GET', 'X-Forwarded-Uri: /api/items'],
        method,
      );
      expect(reply.status).toBe(403);
      expect(reply.body).toContain('untrusted_source');
      expect(reply.headers.has('x-trusted-proxy-assertion')).toBe(false);
      expect(reply.headers.has('x-forwarded-user')).toBe(false);
    }
    await expectNothingReachedGateways(before);
  });

  // Forward-auth mode's trade-off: the gateway is reachable around the sidecar, so it
  // must verify. A captured assertion is refused when replayed or used for another path.
  test('an assertion captured in forward-auth mode does not open the gateway to the rogue host', async () => {
    const next = watch('forward-auth');
    expect((await viaProxy(8082, '/api/captured', [session('alice')])).status).toBe(200);
    const [captured] = await next(1);
    const token = values(captured!, 'x-trusted-proxy-assertion')[0]!;
    const hostHeader = `X-Forwarded-Host: ${values(captured!, 'x-forwarded-host')[0]}`;
    const url = `http://${pod.address}:${GATEWAY_FA_PORT}`;
    const replay = await curlFrom(rogue, `${url}/api/captured`, [`X-Trusted-Proxy-Assertion: ${token}`, hostHeader]);
    const other = await curlFrom(rogue, `${url}/api/other`, [`X-Trusted-Proxy-Assertion: ${token}`, hostHeader]);
    const none = await curlFrom(rogue, `${url}/api/items`, [`X-Forwarded-User: ${ALICE}`]);
    expect([replay.status, other.status, none.status]).toEqual([401, 401, 401]);
    const seen = await next(4);
    expect(seen.slice(1).map((r) => r.assertion)).toEqual([
      { verified: false, error: 'replayed' },
      { verified: false, error: 'target' },
      { verified: false, error: 'missing' },
    ]);
  });
});

test('the sidecar counted both modes, and the rogue host as untrusted', async () => {
  const metrics = await scrape(`http://${pod.address}:${ADMIN_PORT}`);
  const decisions = (labels: Record<string, string>) => sample(metrics, 'trusted_proxy_decisions_total', labels);
  expect(decisions({ mode: 'inline', result: 'allowed' })).toBeGreaterThan(0);
  expect(decisions({ mode: 'forward-auth', result: 'allowed' })).toBeGreaterThan(0);
  expect(decisions({ mode: 'forward-auth', result: 'refused', reason: 'user_not_allowed' })).toBeGreaterThan(0);
  expect(decisions({ mode: 'inline', reason: 'untrusted_source' }) + decisions({ mode: 'forward-auth', reason: 'untrusted_source' })).toBeGreaterThan(0);
});
