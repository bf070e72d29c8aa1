// header-attacks.md class 13: the checks run on the upgrade request itself, forged
// headers on it are replaced, a cross-site page is stopped by Origin, and only WebSocket
// upgrades are tunnelled.
import { ALICE, FORGED, HOST, startStack, type Stack } from './harness.js';

let trusted: Stack;
let untrusted: Stack;
beforeAll(async () => {
  trusted = await startStack({ listen: { allowedOrigins: ['https://app.example'] }, gateway: { scopesHeader: 'x-openclaw-scopes' } });
  untrusted = await startStack({ trust: { allowLoopback: false, cidrs: ['10.0.0.0/8'] } });
});
afterAll(async () => {
  await trusted?.stop();
  await untrusted?.stop();
});

const WS = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'websocket'],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
] as const;
const upgrade = (lines: readonly (readonly [string, string])[]) => `GET /ws HTTP/1.1\r\n${[HOST, ...lines].map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
// An accepted upgrade stays open; collect the reply for a moment, then hang up.
const OPEN_MS = 1500;

async function refusedUpgrade(stack: Stack, lines: readonly (readonly [string, string])[], status: number, reason: string) {
  const before = stack.upstream.upgrades.length + stack.upstream.received.length;
  const { status: got, reply } = await stack.send(upgrade(lines), undefined, OPEN_MS);
  expect(got).toBe(status);
  expect(reply).toContain(`{"error":"${reason}"}`);
  expect(stack.upstream.upgrades.length + stack.upstream.received.length).toBe(before);
}

test('an upgrade with a forged identity from an untrusted source is refused before the upstream', async () => {
  await refusedUpgrade(untrusted, [...WS, ['X-Auth-Request-Email', 'admin@example.com'], ['X-Trusted-Proxy-Assertion', FORGED]], 403, 'untrusted_source');
});

test('an upgrade without an identity is refused', async () => {
  await refusedUpgrade(trusted, [...WS, ['X_Auth_Request_Email', 'admin@example.com']], 401, 'identity_missing');
  await refusedUpgrade(trusted, [...WS.slice(1), ['Connection', 'Upgrade, X-Auth-Request-Email'], ALICE], 401, 'identity_missing');
});

test('forged owned headers on an accepted upgrade are replaced by the sidecar values', async () => {
  const before = trusted.upstream.upgrades.length;
  const { status } = await trusted.send(
    upgrade([
      ...WS,
      ALICE,
      ['Origin', 'https://app.example'],
      ['X-Forwarded-User', 'admin'],
      ['X_Forwarded_User', 'admin'],
      ['X-Trusted-Proxy-Assertion', FORGED],
      ['X-OpenClaw-Scopes', 'operator.admin'],
      ['X-Forwarded-For', '6.6.6.6'],
    ]),
    undefined,
    OPEN_MS,
  );
  expect(status).toBe(101);
  expect(trusted.upstream.upgrades).toHaveLength(before + 1);
  const got = trusted.upstream.upgrades.at(-1)!;
  expect(trusted.upstream.valuesOf(got, 'x-forwarded-user')).toEqual(['alice@example.com']);
  expect(trusted.upstream.valuesOf(got, 'x-openclaw-scopes')).toEqual(['']);
  expect(trusted.upstream.valuesOf(got, 'x-trusted-proxy-assertion')).toHaveLength(1);
  expect(got.headers['x-trusted-proxy-assertion']).not.toBe(FORGED);
  expect(got.rawHeaders.join('\n')).not.toMatch(/admin|x_forwarded/i);
  // The trusted proxy named an untrusted client: that is the walk's answer, sent once.
  expect(trusted.upstream.valuesOf(got, 'x-forwarded-for')).toEqual(['6.6.6.6']);
  expect(got.headers).toMatchObject({ connection: 'upgrade', upgrade: 'websocket', origin: 'https://app.example' });
});

test.each([
  ['a cross-site Origin', [['Origin', 'https://evil.example']]],
  ['a look-alike Origin', [['Origin', 'https://app.example.evil.example']]],
  ['a null Origin (sandboxed frame)', [['Origin', 'null']]],
  [
    'two Origins',
    [
      ['Origin', 'https://app.example'],
      ['Origin', 'https://evil.example'],
    ],
  ],
] as const)('%s on an upgrade is refused', async (_what, origin) => {
  await refusedUpgrade(trusted, [...WS, ALICE, ...origin], 403, 'origin_not_allowed');
});

test('only WebSocket upgrades are tunnelled: h2c never reaches the upstream', async () => {
  const before = trusted.upstream.upgrades.length + trusted.upstream.received.length;
  const { status } = await trusted.send(
    upgrade([['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA'], ALICE]),
    undefined,
    OPEN_MS,
  );
  expect(status).not.toBe(101);
  expect(trusted.upstream.upgrades.length + trusted.upstream.received.length).toBe(before);
});
