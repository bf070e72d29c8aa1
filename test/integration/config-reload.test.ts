// The watched config file: a valid change applies live, an invalid one is refused (logged
// with every problem, counted) while the old config keeps serving; WebSockets of users a
// reload no longer admits are closed with 1008; the WebSocket lifetime bound holds.
import { rmSync } from 'node:fs';
import type WebSocket from 'ws';
import { sample, scrape } from '../support/metrics.js';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { closed, echo, openWebSocket } from '../support/websocket.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };
const BOB = { 'x-auth-request-email': 'bob@example.com' };

let upstream: RecordingUpstream;
let sc: TestSidecar;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url, { identity: { allowUsers: ['alice@example.com', 'bob@example.com'] } }, { configFile: true });
});
afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await sc.stop();
  await upstream.close();
});

async function get(headers: Record<string, string>): Promise<{ status: number; body: string; reached: boolean }> {
  const before = upstream.received.length;
  const res = await fetch(`${sc.url}/page`, { headers });
  const body = await res.text();
  return { status: res.status, body, reached: upstream.received.length > before };
}

function logsWith(msg: string): Record<string, unknown>[] {
  return sc.logs.filter((l) => l.msg === msg);
}

async function ws(headers: Record<string, string>): Promise<WebSocket> {
  const socket = await openWebSocket(`${sc.url.replace('http', 'ws')}/socket`, headers);
  sockets.push(socket);
  return socket;
}

test('a valid change applies: narrowing allowUsers refuses the removed user at once, WebSocket included (1008)', async () => {
  expect(await get(BOB)).toMatchObject({ status: 200, reached: true });
  const aliceWs = await ws(ALICE);
  const bobWs = await ws(BOB);
  expect(await echo(bobWs, 'hi from bob')).toBe('hi from bob');
  const bobClosed = closed(bobWs);

  sc.writeConfig({ ...sc.input, identity: { allowUsers: ['alice@example.com'] } });
  await waitFor(() => logsWith('config reloaded').length === 1, 'config reload');

  expect(await bobClosed).toEqual({ code: 1008, reason: 'access revoked' });
  expect(await echo(aliceWs, 'still here')).toBe('still here');
  expect(await get(BOB)).toEqual({ status: 403, body: '{"error":"user_not_allowed"}', reached: false });
  expect(await get(ALICE)).toMatchObject({ status: 200, reached: true });
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_config_reloads_total', { result: 'applied' })).toBe(1);
  expect(sample(metrics, 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'policy' })).toBe(1);
  // The sidecar lets go of the socket as soon as the client completes the closing
  // handshake (well before its 1 s fallback for peers that never answer).
  await waitFor(async () => sample(await scrape(sc.adminUrl), 'trusted_proxy_websockets_open') === 1, 'bob released', 500);
});

test('an invalid file is refused with every problem logged by key path; the previous config keeps serving', async () => {
  const broken = [
    'listen: { port: "eighty" }',
    'identity: { allowUsers: bob@example.com, userHeader: "bad header" }',
    'assertion: { ttlSeconds: 0 }',
    'unknownKey: 1',
  ].join('\n');
  sc.writeConfig(broken);
  const rejected = await waitFor(() => logsWith('config reload rejected; the previous config stays in force')[0], 'rejection log');
  expect(rejected.level).toBe(50);
  expect(rejected.path).toBe(sc.configPath);
  const problems = rejected.problems as string[];
  for (const path of ['listen.port', 'identity.allowUsers', 'identity.userHeader', 'assertion.ttlSeconds', '(root)']) {
    expect(problems.some((p) => p.startsWith(`${path}:`))).toBe(true);
  }
  expect(problems.some((p) => p.includes('unknownKey'))).toBe(true);

  // A YAML syntax error is refused the same way.
  sc.writeConfig('identity: { allowUsers: [bob@example.com\n');
  await waitFor(() => logsWith('config reload rejected; the previous config stays in force').length === 2, 'second rejection');
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_config_reloads_total', { result: 'rejected' })).toBe(2);
  expect(sample(metrics, 'trusted_proxy_config_reloads_total', { result: 'applied' })).toBe(1);
  // Still the narrowed config of the previous test: alice in, bob out.
  expect(await get(BOB)).toEqual({ status: 403, body: '{"error":"user_not_allowed"}', reached: false });
  expect(await get(ALICE)).toMatchObject({ status: 200, reached: true });

  // Fixing the file applies it.
  sc.writeConfig({ ...sc.input, identity: { allowUsers: ['bob@example.com'] } });
  await waitFor(() => logsWith('config reloaded').length === 2, 'reload of the fixed file');
  expect(await get(BOB)).toMatchObject({ status: 200, reached: true });
  expect(await get(ALICE)).toEqual({ status: 403, body: '{"error":"user_not_allowed"}', reached: false });
});

test('listen.maxWebSocketLifetimeSeconds closes a WebSocket with 1008 once the bound is reached', async () => {
  const bounded = await startSidecar(upstream.url, { listen: { maxWebSocketLifetimeSeconds: 1 } });
  try {
    // Taken before the handshake, so the sidecar's clock for this socket starts later.
    const opened = Date.now();
    const socket = await openWebSocket(`${bounded.url.replace('http', 'ws')}/socket`, ALICE);
    sockets.push(socket);
    const end = closed(socket);
    expect(await echo(socket, 'within the bound')).toBe('within the bound');
    expect(await end).toEqual({ code: 1008, reason: 'session lifetime reached' });
    // Not before the bound (a little slack for timer granularity).
    expect(Date.now() - opened).toBeGreaterThanOrEqual(950);
    expect(sample(await scrape(bounded.adminUrl), 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'lifetime' })).toBe(1);
  } finally {
    await bounded.stop();
  }
});

test('a reload that stops trusting the source closes its WebSockets (1008) and refuses it from then on', async () => {
  const other = await startSidecar(upstream.url, {}, { configFile: true });
  try {
    const socket = await openWebSocket(`${other.url.replace('http', 'ws')}/socket`, ALICE);
    sockets.push(socket);
    expect(await echo(socket, 'trusted')).toBe('trusted');
    const end = closed(socket);
    // Also moves a listener: that needs a restart, so it is logged and left as it is.
    other.writeConfig({ ...other.input, trust: { allowLoopback: false }, admin: { ...other.input.admin, port: 1 } });
    await waitFor(() => other.logs.some((l) => l.msg === 'config reloaded'), 'reload');
    expect(await end).toEqual({ code: 1008, reason: 'access revoked' });
    const res = await fetch(`${other.url}/page`, { headers: ALICE });
    expect(res.status).toBe(403);
    expect(await res.text()).toBe('{"error":"untrusted_source"}');
    expect(other.logs.find((l) => l.msg === 'config change needs a restart to take effect')).toMatchObject({ key: 'admin.port', old: 0, new: 1 });
    expect((await fetch(`${other.adminUrl}/healthz`)).status).toBe(200);
  } finally {
    await other.stop();
  }
});

test('logging.level applies on reload (debug shows allowed requests); a deleted file is refused, the config stays', async () => {
  const other = await startSidecar(upstream.url, { logging: { level: 'info' } }, { configFile: true });
  try {
    const allowedLines = () => other.logs.filter((l) => l.msg === 'allowed').length;
    expect((await fetch(`${other.url}/quiet`, { headers: ALICE })).status).toBe(200);
    expect(allowedLines()).toBe(0);
    other.writeConfig({ ...other.input, logging: { level: 'debug' } });
    await waitFor(() => other.logs.some((l) => l.msg === 'config reloaded'), 'reload');
    expect((await fetch(`${other.url}/loud`, { headers: ALICE })).status).toBe(200);
    expect(other.logs.filter((l) => l.msg === 'allowed')).toEqual([expect.objectContaining({ path: '/loud', user: 'alice@example.com' })]);

    rmSync(other.configPath!);
    const rejected = await waitFor(() => other.logs.find((l) => l.msg === 'config reload rejected; the previous config stays in force'), 'rejection');
    expect(rejected.problems).toEqual([expect.stringContaining('ENOENT')]);
    expect((await fetch(`${other.url}/still`, { headers: ALICE })).status).toBe(200);
    expect(allowedLines()).toBe(2);
  } finally {
    await other.stop();
  }
});

test('listener limits change on reload too: a raised maxHeaderCount admits more headers, every one still checked', async () => {
  const other = await startSidecar(upstream.url, { listen: { maxHeaderCount: 20 } }, { configFile: true });
  try {
    // 30 header lines: over the old limit, under the new one.
    const filler = Array.from({ length: 27 }, (_, i) => `x-filler-${i}: ${i}\r\n`).join('');
    const request = (identity: string) =>
      `GET /many HTTP/1.1\r\nhost: gateway\r\nx-auth-request-email: alice@example.com\r\n${filler}${identity}connection: close\r\n\r\n`;
    expect(statusOf(await rawRequest(other.port, request('x-last: 1\r\n')))).toBe(431);
    other.writeConfig({ ...other.input, listen: { ...other.input.listen, maxHeaderCount: 40 } });
    await waitFor(() => other.logs.some((l) => l.msg === 'config reloaded'), 'reload');
    const before = upstream.received.length;
    expect(statusOf(await rawRequest(other.port, request('x-last: 1\r\n')))).toBe(200);
    expect(upstream.received.slice(before).map((r) => upstream.valuesOf(r, 'x-filler-26'))).toEqual([['26']]);
    // The identity sent twice, the second copy as the 30th line: seen, and refused.
    const reply = await rawRequest(other.port, request('x-auth-request-email: mallory@example.com\r\n'));
    expect(statusOf(reply)).toBe(401);
    expect(reply).toContain('{"error":"identity_duplicated"}');
    expect(upstream.received.length).toBe(before + 1);
  } finally {
    await other.stop();
  }
});
