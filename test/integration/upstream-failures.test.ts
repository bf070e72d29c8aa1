// The gateway misbehaving: nothing listening, a reset before or during the response, too
// slow. The client gets a small JSON 502/504 (or a cut-off response it can tell from a
// whole one), each failure is counted by kind, and the sidecar keeps serving.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { sample, scrape } from '../support/metrics.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { echo, openWebSocket } from '../support/websocket.js';

const USER = { 'x-auth-request-email': 'alice@example.com' };

let upstream: RecordingUpstream;
let sc: TestSidecar;
const pending = new Set<NodeJS.Timeout>();

function later(res: ServerResponse, ms: number, fn: () => void): void {
  const timer = setTimeout(() => {
    pending.delete(timer);
    fn();
  }, ms);
  pending.add(timer);
  res.once('close', () => clearTimeout(timer));
}

beforeAll(async () => {
  upstream = await startRecordingUpstream((req, res) => {
    switch (req.url) {
      case '/reset-before-response':
        req.socket.resetAndDestroy();
        return;
      case '/reset-mid-body':
      case '/reset-mid-chunked-body':
        res.writeHead(200, { 'content-type': 'text/plain', ...(req.url === '/reset-mid-body' && { 'content-length': '1000' }) });
        res.write('x'.repeat(100));
        later(res, 50, () => req.socket.resetAndDestroy());
        return;
      case '/slow':
        later(res, 3000, () => res.end('too late'));
        return;
      default:
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    }
  });
  sc = await startSidecar(upstream.url, { upstream: { timeoutSeconds: 0.3 } });
});
afterAll(async () => {
  for (const t of pending) clearTimeout(t);
  await sc.stop();
  await upstream.close();
});

async function get(base: string, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`${base}${path}`, { headers: USER });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

async function stillServing(): Promise<void> {
  expect(await get(sc.url, '/ok')).toMatchObject({ status: 200, body: 'ok' });
}

function errors(metrics: string, kind: string): number {
  return sample(metrics, 'trusted_proxy_upstream_errors_total', { kind });
}

test('nothing listening: 502 upstream_unavailable, counted as refused, and the sidecar stays up', async () => {
  // A port that was just free: bind, note it, release it.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const orphan = await startSidecar(`http://127.0.0.1:${port}`);
  try {
    for (let i = 0; i < 2; i++) {
      expect(await get(orphan.url, '/x')).toEqual({ status: 502, body: '{"error":"upstream_unavailable"}', type: 'application/json' });
    }
    expect(errors(await scrape(orphan.adminUrl), 'refused')).toBe(2);
    expect(orphan.logs.filter((l) => l.msg === 'upstream error' && l.kind === 'refused')).toHaveLength(2);
  } finally {
    await orphan.stop();
  }
});

test('the upstream resets before answering: 502 upstream_unavailable, counted as reset', async () => {
  expect(await get(sc.url, '/reset-before-response')).toEqual({ status: 502, body: '{"error":"upstream_unavailable"}', type: 'application/json' });
  expect(errors(await scrape(sc.adminUrl), 'reset')).toBe(1);
  await stillServing();
});

test.each(['/reset-mid-body', '/reset-mid-chunked-body'])(
  'the upstream resets mid-response (%s): the client sees a cut-off response, never a complete one',
  async (path) => {
    const before = errors(await scrape(sc.adminUrl), 'reset');
    const res = await fetch(`${sc.url}${path}`, { headers: USER });
    // The status line was already relayed; what matters is that the body does not end cleanly.
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    expect(errors(await scrape(sc.adminUrl), 'reset')).toBe(before + 1);
    await stillServing();
    expect(upstream.received.filter((r) => r.url === path)).toHaveLength(1);
  },
);

test('the upstream slower than upstream.timeoutSeconds: 504 upstream_timeout, counted as timeout', async () => {
  const before = errors(await scrape(sc.adminUrl), 'timeout');
  expect(await get(sc.url, '/slow')).toEqual({ status: 504, body: '{"error":"upstream_timeout"}', type: 'application/json' });
  expect(errors(await scrape(sc.adminUrl), 'timeout')).toBe(before + 1);
  // It did reach the upstream (this is not a refusal) and the sidecar answered on its own.
  expect(upstream.received.filter((r) => r.url === '/slow')).toHaveLength(1);
  await stillServing();
});

test('after every failure kind the sidecar still serves, and reports nothing but JSON codes', async () => {
  const results = await Promise.all(['/ok', '/reset-before-response', '/ok', '/slow', '/ok'].map((p) => get(sc.url, p)));
  expect(results.map((r) => r.status)).toEqual([200, 502, 200, 504, 200]);
  for (const r of results.filter((x) => x.status >= 500)) {
    expect(r.body).toMatch(/^\{"error":"upstream_(unavailable|timeout)"\}$/);
  }
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_upstream_responses_total', { class: '2xx' })).toBeGreaterThanOrEqual(4);
  expect(errors(metrics, 'other')).toBe(0);
});

test('an upgrade the upstream never answers: 504 upstream_timeout, not a client left hanging', async () => {
  // A gateway that accepts the connection and then says nothing.
  const accepted: Socket[] = [];
  const silent = createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const stuck = await startSidecar(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`, { upstream: { timeoutSeconds: 0.3 } });
  try {
    const refused = await openWebSocket(`${stuck.url.replace('http', 'ws')}/ws`, USER).then(
      () => ({ status: 101, body: '' }),
      (e: { status?: number; body?: string }) => ({ status: e.status, body: e.body }),
    );
    expect(refused).toEqual({ status: 504, body: '{"error":"upstream_timeout"}' });
    expect(accepted).toHaveLength(1);
    expect(errors(await scrape(stuck.adminUrl), 'timeout')).toBe(1);
  } finally {
    await stuck.stop();
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('upstream.timeoutSeconds bounds the wait for the upgrade, not how long a WebSocket may idle', async () => {
  const ws = await openWebSocket(`${sc.url.replace('http', 'ws')}/ws`, USER);
  try {
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(await echo(ws, 'after idling past the upstream timeout')).toBe('after idling past the upstream timeout');
  } finally {
    ws.terminate();
  }
});
