// The third adversarial pass, replayed against the real sidecar process (dist/sidecar.js)
// on real loopback sockets: each finding's attack as it was delivered, what the sidecar
// answered and what reached the gateway. Recorded in reports/reliability.md only after
// every row's assertions held. (The guard's findings are delivered to the guard in a real
// gateway process in test/guard/guard.test.ts; the provider token's in
// test/unit/identity/provider-token.test.ts, against jose.)
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { recordSection, table } from './report.js';
import { type AssertionError, ReplayCache, verifyAssertion } from '../../src/assertion/verify.js';
import { ADMIN_CONNECTIONS_PER_ADDRESS, ADMIN_SHARED_CONNECTIONS } from '../../src/server/admin.js';
import { sample, scrape } from '../support/metrics.js';
import { answeredWhole, RawClient, rawRequest, statuses, statusOf } from '../support/raw-client.js';
import { TEST_KEY } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { serveProcess, type SidecarProcess } from './process.js';

const TRAEFIK = 'spiffe://cluster.local/ns/traefik/sa/traefik';
const KEYS = new Map([['k1', TEST_KEY]]);
const rows: string[][] = [];
let gateway: RecordingUpstream;
const running: SidecarProcess[] = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  gateway = await startRecordingUpstream();
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const sc of running) await sc.stop();
  await gateway.close();
});

async function serve(...args: Parameters<typeof serveProcess>): Promise<SidecarProcess> {
  const sc = await serveProcess(...args);
  running.push(sc);
  return sc;
}
const request = (lines: string[]) => `${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`;
const seen = () => gateway.received.length;

test("1, 2. XFCC: a backslash cannot merge the client's element into the proxy's; a loopback address is the whole pod", async () => {
  const sc = await serve({
    upstream: { url: gateway.url },
    trust: { allowLoopback: true, cidrs: ['127.0.0.6'], require: 'both', clientCertificates: { from: 'xfcc', spiffeIds: [TRAEFIK] } },
  });
  const proxyElement = 'By=spiffe://cluster.local/ns/claw/sa/claw;Hash=0f;Subject="";URI=spiffe://cluster.local/ns/default/sa/attacker';
  const before = seen();
  const merged = await rawRequest(
    sc.port,
    request([
      'GET /x HTTP/1.1',
      'Host: claw.example.com',
      'X-Auth-Request-Email: admin@example.com',
      `X-Forwarded-Client-Cert: URI=${TRAEFIK};By=\\,${proxyElement}`,
    ]),
    '127.0.0.1',
    3000,
    '127.0.0.6',
  );
  expect(statusOf(merged)).toBe(403);
  expect(seen()).toBe(before);
  rows.push([
    '1',
    "a client XFCC element ending in `\\` ahead of the mesh proxy's, from 127.0.0.6",
    `${statusOf(merged)} untrusted_source (xfcc_malformed)`,
    'nothing',
  ]);
  // Any process of the pod can bind 127.0.0.6 and write an honest-looking header: accepted,
  // which is why the chart keeps the data port out of the capture and doctor warns.
  const forged = await rawRequest(
    sc.port,
    request([
      'GET /x HTTP/1.1',
      'Host: claw.example.com',
      'X-Auth-Request-Email: admin@example.com',
      `X-Forwarded-Client-Cert: By=x;Hash=0f;Subject="";URI=${TRAEFIK}`,
    ]),
    '127.0.0.1',
    3000,
    '127.0.0.6',
  );
  expect(statusOf(forged)).toBe(200);
  expect(seen()).toBe(before + 1);
  rows.push([
    '2',
    "another container binds 127.0.0.6 and writes the ingress's XFCC (`from: xfcc`)",
    `${statusOf(forged)}: accepted, as documented`,
    'admin@example.com: `from: xfcc` trusts the pod; the chart excludes the data port from the capture, `doctor` warns',
  ]);
});

test('4. a request without a host the gateway could rebuild htu from is refused', async () => {
  const sc = await serve({ upstream: { url: gateway.url } });
  const before = seen();
  const dot = await rawRequest(sc.port, request(['GET /x HTTP/1.1', 'Host: claw.example.com.', 'X-Auth-Request-Email: alice@example.com']));
  const http10 = await rawRequest(sc.port, 'GET /x HTTP/1.0\r\nX-Auth-Request-Email: alice@example.com\r\n\r\n');
  expect([statusOf(dot), statusOf(http10)]).toEqual([400, 400]);
  expect(seen()).toBe(before);
  rows.push(['4', '`Host: claw.example.com.`; HTTP/1.0 without Host', `${statusOf(dot)}, ${statusOf(http10)} bad_request`, 'nothing']);
});

test("5. bytes past the gateway's framing in a later read never answer the next user", async () => {
  // A gateway whose first connection answers alice, then writes a second answer of its own
  // when the next request's bytes come; any other connection answers for itself.
  let connections = 0;
  const sockets = new Set<Socket>();
  const leaky: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    const mine = connections++;
    let requests = 0;
    s.on('data', (d: Buffer) => {
      const user = /x-forwarded-user: (\S+)/i.exec(d.toString('latin1'))?.[1] ?? '';
      if (mine === 0 && requests++ > 0) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nalice-private');
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${user.length}\r\n\r\n${user}`);
    });
  });
  await new Promise<void>((resolve) => leaky.listen(0, '127.0.0.1', resolve));
  try {
    const sc = await serve({ upstream: { url: `http://127.0.0.1:${(leaky.address() as AddressInfo).port}` } });
    // One front-proxy connection carrying two users.
    const c = await RawClient.connect(sc.port);
    clients.push(c);
    c.write('GET /a HTTP/1.1\r\nHost: claw.example.com\r\nX-Auth-Request-Email: alice@example.com\r\n\r\n');
    await c.receive((t) => t.endsWith('alice@example.com'), "alice's answer");
    c.write('GET /b HTTP/1.1\r\nHost: claw.example.com\r\nX-Auth-Request-Email: bob@example.com\r\n\r\n');
    await c.receive((t) => t.endsWith('bob@example.com'), "bob's answer");
    expect(c.text).not.toContain('alice-private');
    expect(connections).toBe(2);
    rows.push([
      '5',
      "a gateway writes bytes past alice's answer once the next request comes; bob's request follows on the same client connection",
      `bob's own answer, on a gateway connection of his own (${connections} in all)`,
      "alice's bytes reach no one",
    ]);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => leaky.close(() => resolve()));
  }
});

test('6. an assertion binds the query and the scopes, and is used once', async () => {
  const sc = await serve({ upstream: { url: gateway.url }, gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'] } } });
  const reply = await rawRequest(sc.port, request(['GET /api/report?id=1 HTTP/1.1', 'Host: claw.example.com', 'X-Auth-Request-Email: alice@example.com']));
  expect(statusOf(reply)).toBe(200);
  const got = gateway.received.at(-1)!;
  const token = String(got.headers['x-trusted-proxy-assertion']);
  const uri = (target: string) => `http://claw.example.com${target}`;
  const code = (target: string, scopes: string, cache?: ReplayCache) =>
    verifyAssertion(token, { keys: KEYS, replayCache: cache, request: { method: 'GET', uri: uri(target), scopes: { received: scopes } } }).then(
      () => 'verified',
      (e: unknown) => (e as AssertionError).code,
    );
  const cache = new ReplayCache();
  const results = [
    await code('/api/report?id=2', 'operator.read'),
    await code('/api/report?id=1', 'operator.read,operator.admin'),
    await code('/api/report?id=1', 'operator.read', cache),
    await code('/api/report?id=1', 'operator.read', cache),
  ];
  expect(results).toEqual(['target', 'scopes', 'verified', 'replayed']);
  rows.push([
    '6',
    'an assertion captured at the gateway, sent with another query; with forged scopes; twice',
    results.join(', '),
    'a verifier (the guard) refuses all but the first use',
  ]);
});

test("7. a refused peer's flood of 15 KB targets costs the log a bounded run of short lines", async () => {
  const sc = await serve({ upstream: { url: gateway.url }, trust: { allowLoopback: true, cidrs: ['127.0.0.1/32'] } });
  const target = `/${'a'.repeat(15_000)}`;
  const flood = 100;
  for (let i = 0; i < flood; i++)
    await rawRequest(
      sc.port,
      request([`GET ${target} HTTP/1.1`, 'Host: claw.example.com', 'X-Auth-Request-Email: evil@example.com']),
      '127.0.0.1',
      3000,
      '127.0.0.3',
    );
  const held = await waitFor(async () => {
    const n = sample(await scrape(sc.adminUrl), 'trusted_proxy_log_lines_held_back_total', { line: 'refused' });
    const written = sc.logs().filter((l) => l['msg'] === 'refused' && l['peer'] === '127.0.0.3').length;
    return n + written === flood ? n : undefined;
  }, 'every refusal written or counted');
  const lines = sc.logs().filter((l) => l['msg'] === 'refused' && l['peer'] === '127.0.0.3');
  const bytes = lines.reduce((sum, l) => sum + JSON.stringify(l).length + 1, 0);
  expect(bytes).toBeLessThan(flood * 1000);
  rows.push([
    '7',
    `${flood} refused requests with 15 KB targets from one address outside the trusted set`,
    `${lines.length} lines (${(bytes / 1024).toFixed(1)} KB, paths clipped), ${held} held back and counted`,
    'nothing',
  ]);
});

test('8. the admin port full from eight addresses still answers the kubelet', async () => {
  const sc = await serve({ upstream: { url: gateway.url } });
  const adminPort = Number(new URL(sc.adminUrl).port);
  const pods = ADMIN_SHARED_CONNECTIONS / ADMIN_CONNECTIONS_PER_ADDRESS;
  for (let pod = 0; pod < pods; pod++) {
    const held = await Promise.all(
      Array.from({ length: ADMIN_CONNECTIONS_PER_ADDRESS }, () => RawClient.connect(adminPort, '127.0.0.1', { localAddress: `127.0.5.${pod + 1}` })),
    );
    clients.push(...held);
  }
  const kubelet = await RawClient.connect(adminPort, '127.0.0.1', { localAddress: '127.0.6.1' });
  clients.push(kubelet);
  kubelet.write('GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n');
  const status = statuses(await kubelet.receive(answeredWhole, "the probe's answer"))[0];
  expect(status).toBe(200);
  rows.push([
    '8',
    `${pods} addresses hold ${ADMIN_CONNECTIONS_PER_ADDRESS} admin connections each, then a probe from the node's address`,
    `${status}: the probe found room in the reserve`,
    '(admin port)',
  ]);
});

afterAll(() => {
  // Every row pushed after its assertions held: all seven, or no record.
  if (rows.length < 7) return;
  recordSection(
    'adversarial',
    [
      'Findings of the third adversarial pass, delivered to the real sidecar process (`dist/sidecar.js serve`) over loopback sockets, each from its own source address.',
      "The guard's findings (a non-ASCII user, the key folder across rotation, scopes, single use) are delivered to the guard in a real gateway process by `test/guard/guard.test.ts`; the provider token's (`email_verified`, `iat`) by `test/unit/identity/provider-token.test.ts`.",
      '',
      table(
        ['item', 'attack as delivered', 'sidecar', 'reached the gateway'],
        rows.sort((a, b) => a[0]!.localeCompare(b[0]!)),
      ),
    ].join('\n'),
  );
});
