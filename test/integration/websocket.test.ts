// WebSockets through the sidecar: the upgrade passes the same decision as any request,
// carries the assertion and sanitised headers, is refused before reaching the gateway
// without an identity or from a foreign Origin, and is then relayed both ways.
import type WebSocket from 'ws';
import { verifyAssertion } from '../../src/assertion/verify.js';
import { sample, scrape } from '../support/metrics.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { echo, openWebSocket } from '../support/websocket.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };
const APP = 'https://app.example.com';

let upstream: RecordingUpstream;
let sc: TestSidecar;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url, { listen: { allowedOrigins: [APP] } });
});
afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await sc.stop();
  await upstream.close();
});

async function open(headers: Record<string, string>, origin?: string, base = sc.url): Promise<WebSocket> {
  const ws = await openWebSocket(`${base.replace('http', 'ws')}/socket?room=1`, headers, origin);
  sockets.push(ws);
  return ws;
}

async function refusal(headers: Record<string, string>, origin?: string, base = sc.url): Promise<{ status: number; body: string }> {
  const before = upstream.upgrades.length;
  const err = (await open(headers, origin, base).then(
    () => {
      throw new Error('the upgrade was accepted');
    },
    (e: unknown) => e,
  )) as { status: number; body: string };
  // Nothing of a refused upgrade reaches the gateway.
  expect(upstream.upgrades.length).toBe(before);
  return { status: err.status, body: err.body };
}

test('messages are relayed both ways, text and binary, many in a row', async () => {
  const ws = await open(ALICE, APP);
  for (let i = 0; i < 20; i++) expect(await echo(ws, `message ${i}`)).toBe(`message ${i}`);
  const binary = await new Promise<Buffer>((resolve) => {
    ws.once('message', (data) => resolve(data as Buffer));
    ws.send(Buffer.from([0, 1, 2, 255]));
  });
  expect([...binary]).toEqual([0, 1, 2, 255]);
  const big = 'y'.repeat(256 * 1024);
  expect(await echo(ws, big)).toBe(big);
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_websockets_open')).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, 'trusted_proxy_upstream_responses_total', { class: '101' })).toBeGreaterThanOrEqual(1);
});

test('the upgrade carries a verifying assertion and sanitised headers to the upstream', async () => {
  const before = upstream.upgrades.length;
  await open(
    {
      ...ALICE,
      'x-forwarded-user': 'admin@example.com',
      x_forwarded_user: 'admin@example.com',
      'x-trusted-proxy-assertion': 'forged.token.here',
      'x-real-ip': '10.9.9.9',
      forwarded: 'for=10.9.9.9',
      'x-forwarded-host': 'gateway.example.com',
      'x-forwarded-proto': 'https',
      'x-custom': 'kept',
    },
    APP,
  );
  const got = upstream.upgrades[before]!;
  expect(upstream.upgrades).toHaveLength(before + 1);
  expect(got.url).toBe('/socket?room=1');
  expect(upstream.valuesOf(got, 'x-forwarded-user')).toEqual(['alice@example.com']);
  expect(upstream.valuesOf(got, 'x_forwarded_user')).toEqual([]);
  expect(upstream.valuesOf(got, 'x-real-ip')).toEqual([]);
  expect(upstream.valuesOf(got, 'forwarded')).toEqual([]);
  expect(upstream.valuesOf(got, 'origin')).toEqual([APP]);
  expect(upstream.valuesOf(got, 'x-custom')).toEqual(['kept']);
  expect(upstream.valuesOf(got, 'upgrade').map((v) => v.toLowerCase())).toEqual(['websocket']);
  const tokens = upstream.valuesOf(got, 'x-trusted-proxy-assertion');
  expect(tokens).toHaveLength(1);
  const claims = await verifyAssertion(tokens[0]!, {
    keys: sc.keys,
    // The trusted proxy (loopback here) named the original scheme and host.
    request: { method: 'GET', uri: 'https://gateway.example.com/socket?room=1' },
  });
  expect(claims).toMatchObject({ sub: 'alice@example.com', htm: 'GET' });
  // The sidecar's own X-Forwarded-* values, not the proxy's lines passed through twice.
  expect(upstream.valuesOf(got, 'x-forwarded-proto')).toEqual(['https']);
  expect(upstream.valuesOf(got, 'x-forwarded-host')).toEqual(['gateway.example.com']);
});

test('an upgrade without identity is refused 401 before anything reaches the upstream', async () => {
  expect(await refusal({}, APP)).toEqual({ status: 401, body: '{"error":"identity_missing"}' });
  expect(await refusal({ 'x-auth-request-email': ' ' }, APP)).toEqual({ status: 401, body: '{"error":"identity_blank"}' });
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_decisions_total', { result: 'refused', reason: 'identity_missing' })).toBeGreaterThanOrEqual(1);
});

test('an upgrade from an untrusted source is refused 403', async () => {
  const closedDoor = await startSidecar(upstream.url, { trust: { allowLoopback: false } });
  try {
    expect(await refusal(ALICE, APP, closedDoor.url)).toEqual({ status: 403, body: '{"error":"untrusted_source"}' });
  } finally {
    await closedDoor.stop();
  }
});

test('Origin allow list: the listed origin passes, any other is refused 403', async () => {
  const ws = await open(ALICE, APP);
  expect(await echo(ws, 'from the app')).toBe('from the app');
  for (const origin of ['https://evil.example.com', 'http://app.example.com', 'https://app.example.com.evil.net', 'null']) {
    expect(await refusal(ALICE, origin)).toEqual({ status: 403, body: '{"error":"origin_not_allowed"}' });
  }
  expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_decisions_total', { result: 'refused', reason: 'origin_not_allowed' })).toBe(4);
});
