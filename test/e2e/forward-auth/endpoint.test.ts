// The forward-auth endpoint on its own, over real sockets: what a front proxy's
// sub-request gets back, and that nothing on that path ever reaches the gateway.
import { verifyAssertion } from '../../../src/assertion/verify.js';
import { scrape, sample } from '../../support/metrics.js';
import { rawRequest, statusOf } from '../../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../../harness/upstream.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url, {
    forwardAuth: { enabled: true },
    identity: { groupsHeader: 'x-auth-request-groups', allowGroups: ['operators'] },
    gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: [], byGroup: { operators: ['operator.read'] } } },
  });
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
});
afterEach(() => {
  // Every case here talks to the forward-auth path, which is never proxied.
  expect(upstream.received).toHaveLength(0);
  expect(upstream.upgrades).toHaveLength(0);
});

const ALICE = 'x-auth-request-email: alice@example.com\r\nx-auth-request-groups: operators\r\n';
const ORIGINAL = 'x-forwarded-method: POST\r\nx-forwarded-uri: /api/items?page=2\r\nx-forwarded-proto: https\r\nx-forwarded-host: gw.example.com\r\n';

function headerOf(reply: string, name: string): string | undefined {
  const head = reply.split('\r\n\r\n')[0]!;
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

async function claimsOf(reply: string, method = 'POST', uri = 'https://gw.example.com/api/items?page=2') {
  const token = headerOf(reply, 'x-trusted-proxy-assertion');
  expect(token).toBeDefined();
  return verifyAssertion(token!, { keys: sc.keys, request: { method, uri } });
}

test('a sub-request with identity gets 200, the assertion bound to the original request, user and scopes', async () => {
  const reply = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ALICE}${ORIGINAL}connection: close\r\n\r\n`);
  expect(statusOf(reply)).toBe(200);
  expect(headerOf(reply, 'x-forwarded-user')).toBe('alice@example.com');
  expect(headerOf(reply, 'x-openclaw-scopes')).toBe('operator.read');
  expect((await claimsOf(reply)).sub).toBe('alice@example.com');
});

test('X-Forwarded-Prefix, X-Forwarded-Port and other forwarded headers outside the decision change nothing', async () => {
  const extra = 'x-forwarded-prefix: /admin\r\nx-forwarded-port: 1\r\nx-forwarded-server: evil\r\nx-original-uri: /admin\r\n';
  const reply = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ALICE}${ORIGINAL}${extra}connection: close\r\n\r\n`);
  expect(statusOf(reply)).toBe(200);
  const claims = await claimsOf(reply);
  expect(claims.htu).toBe('https://gw.example.com/api/items?page=2');
  expect(reply).not.toContain('/admin');
});

test.each([
  ['absolute-form', 'http://evil.example/api'],
  ['asterisk-form', '*'],
  ['authority-form', 'evil.example:443'],
  ['a fragment', '/api#x'],
  ['a space', '/a b'],
])('an X-Forwarded-Uri in %s is refused with 403', async (_what, uri) => {
  const reply = await rawRequest(
    sc.port,
    `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ALICE}x-forwarded-method: GET\r\nx-forwarded-uri: ${uri}\r\nconnection: close\r\n\r\n`,
  );
  expect(statusOf(reply)).toBe(403);
  expect(reply).toContain('{"error":"forwarded_uri_invalid"}');
  expect(headerOf(reply, 'x-trusted-proxy-assertion')).toBeUndefined();
});

test('HEAD and POST sub-requests are answered too (the original method comes from X-Forwarded-Method)', async () => {
  for (const method of ['HEAD', 'POST']) {
    const reply = await rawRequest(
      sc.port,
      `${method} /forward-auth?from=nginx HTTP/1.1\r\nhost: sidecar\r\n${ALICE}${ORIGINAL}content-length: 0\r\nconnection: close\r\n\r\n`,
    );
    expect(statusOf(reply)).toBe(200);
    expect((await claimsOf(reply)).htm).toBe('POST');
  }
});

// nginx auth_request turns every status but 2xx, 401 and 403 into a 500 for the client.
test('refusals on the forward-auth path are only ever 401 or 403, with the reason in the body', async () => {
  const missing = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ORIGINAL}connection: close\r\n\r\n`);
  expect(statusOf(missing)).toBe(401);
  const bob = await rawRequest(
    sc.port,
    `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\nx-auth-request-email: bob@example.com\r\n${ORIGINAL}connection: close\r\n\r\n`,
  );
  expect(statusOf(bob)).toBe(403);
  expect(bob).toContain('{"error":"user_not_allowed"}');
  // Inline, a duplicated Host is a 400; on the forward-auth path it must still be 401/403.
  const twoHosts = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: a\r\nhost: b\r\n${ALICE}${ORIGINAL}connection: close\r\n\r\n`);
  expect(statusOf(twoHosts)).toBe(403);
  expect(twoHosts).toContain('{"error":"bad_request"}');
});

// Caddy's forward_auth passes a client's Upgrade on to the auth endpoint.
test('an upgrade request to the forward-auth path is answered, never proxied', async () => {
  const ws = 'connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const allowed = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ALICE}${ORIGINAL}${ws}\r\n`);
  expect(statusOf(allowed)).toBe(200);
  expect((await claimsOf(allowed)).sub).toBe('alice@example.com');
  const refused = await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ORIGINAL}${ws}\r\n`);
  expect(statusOf(refused)).toBe(401);
});

test('decisions on the forward-auth path are counted and logged as mode forward-auth', async () => {
  const before = await scrape(sc.adminUrl);
  const labels = { mode: 'forward-auth', result: 'refused', reason: 'identity_missing' };
  await rawRequest(sc.port, `GET /forward-auth HTTP/1.1\r\nhost: sidecar\r\n${ORIGINAL}connection: close\r\n\r\n`);
  const after = await scrape(sc.adminUrl);
  expect(sample(after, 'trusted_proxy_decisions_total', labels)).toBe(sample(before, 'trusted_proxy_decisions_total', labels) + 1);
  const logged = sc.logs.filter((l) => l['reason'] === 'identity_missing').at(-1);
  expect(logged).toMatchObject({ mode: 'forward-auth', method: 'GET', path: '/forward-auth' });
});
