// Faults while the sidecar is under load, counted: the upstream refusing, resetting,
// slow to answer or to read, dropping WebSockets and restarting under open sockets; keys
// rotated, removed, truncated and unreadable; config rewritten rapidly and broken; SIGTERM
// under HTTP and WebSocket load. The sidecar is a real process, so its descriptors and
// memory are its own: /proc/<pid>/fd and VmRSS before and after.
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { mb, recordSection, table } from './report.js';
import { profile } from './profile.js';
import { TEST_KEY } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';
import { closed, echo, openWebSocket } from '../support/websocket.js';
import { fdCount, fdsSettle, load, metric, request, rssBytes, serveProcess, tally, type Answer, type SidecarProcess } from './process.js';

const P = profile();
const N = P.faultLoadRequests;
const ALICE = { 'x-auth-request-email': 'alice@example.com' };
const rows: (string | number)[][] = [];

// ------------------------------------------------------------------ a misbehaving upstream

interface FaultUpstream {
  port: number;
  url: string;
  /** Assertions of every request that reached it. */
  assertions: string[];
  stopListening(): Promise<void>;
  listen(): Promise<void>;
  close(): Promise<void>;
}

async function startFaultUpstream(port = 0): Promise<FaultUpstream> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const assertions: string[] = [];
  const later = (res: ServerResponse, ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    res.once('close', () => clearTimeout(t));
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const token = req.headers['x-trusted-proxy-assertion'];
    if (typeof token === 'string') assertions.push(token);
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/slow-read') return; // never reads the body, never answers
    req.resume();
    if (path === '/slow') return later(res, 3000, () => res.end('too late'));
    if (path === '/slow-ok') return later(res, 600, () => res.end('slow ok'));
    if (path === '/reset') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('x'.repeat(100));
      return later(res, 20, () => req.socket.resetAndDestroy());
    }
    res.end('ok');
  };
  let server = http.createServer(handler);
  const wss = new WebSocketServer({ noServer: true });
  const arm = (s: http.Server) => {
    s.keepAliveTimeout = 1000;
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.once('close', () => sockets.delete(c));
    });
    s.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (req.url === '/ws-drop') setTimeout(() => ws.terminate(), 50);
        else ws.on('message', (d, bin) => ws.send(d, { binary: bin }));
      });
    });
  };
  arm(server);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  const stopListening = async () => {
    for (const c of sockets) c.destroy();
    for (const t of timers) clearTimeout(t);
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    assertions,
    stopListening,
    listen: async () => {
      server = http.createServer(handler);
      arm(server);
      await new Promise<void>((r) => server.listen(bound, '127.0.0.1', r));
    },
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      if (server.listening) await stopListening();
    },
  };
}

let upstream: FaultUpstream;
const running: SidecarProcess[] = [];
beforeAll(async () => {
  upstream = await startFaultUpstream();
});
afterAll(async () => {
  for (const sc of running) await sc.stop();
  await upstream.close();
  if (rows.length > 0) {
    recordSection(
      'faults',
      [
        `Each fault runs under load (${N} requests per scenario unless stated, concurrency 24, a new connection per request,`,
        'so what the sidecar still holds afterwards is its own). Descriptors are `/proc/<pid>/fd` of the sidecar process',
        '(after it settles, bound: baseline + 4); memory is its VmRSS. "Failed" counts answers that the fault does not explain.',
        '',
        table(['fault', 'requests / sockets', 'answers', 'failed', 'fds before → after', 'RSS before → after'], rows),
      ].join('\n'),
    );
  }
}, 30_000);

async function start(input: Parameters<typeof serveProcess>[0] = {}, options: Parameters<typeof serveProcess>[1] = {}): Promise<SidecarProcess> {
  const sc = await serveProcess({ upstream: { url: upstream.url, timeoutSeconds: 1.5, ...input.upstream }, ...input }, options);
  running.push(sc);
  await waitFor(async () => (await request(`${sc.adminUrl}/readyz`)).status === 200, 'ready', 10_000);
  return sc;
}

const get = (sc: SidecarProcess, path: string, extra: { method?: string; body?: Buffer } = {}) =>
  request(`${sc.url}${path}`, { headers: ALICE, timeoutMs: 10_000, ...extra });
const answers = (list: Answer[]) =>
  Object.entries(tally(list.map((a) => (a.cut ? `${a.status} cut off` : a.status))))
    .map(([k, v]) => `${k}×${v}`)
    .join(', ');

/** Each recorded assertion verifies with one of the keys ever installed. */
function unverifiable(tokens: string[], keys: Buffer[]): number {
  return tokens.filter((t) => {
    const [h, p, s] = t.split('.');
    return !keys.some((k) => createHmac('sha256', k).update(`${h}.${p}`).digest('base64url') === s);
  }).length;
}

test('upstream refused, reset mid-response, slow to answer and slow to read under load: clean 502/504, still serving, no leak', async () => {
  const sc = await start();
  await load(50, 8, () => get(sc, '/ok')); // warm-up: code paths and pools exist
  const fds0 = await fdsSettle(sc.pid, fdCount(sc.pid));
  const rss0 = rssBytes(sc.pid);
  const paths = ['/ok', '/reset', '/ok', '/slow', '/ok', '/slow-read'];
  const big = randomBytes(4 * 1024 * 1024);
  // Two equal rounds: allocator high-water marks are reached in the first, a leak keeps
  // growing in the second.
  const round = () =>
    load(N / 2, 24, async (i) => {
      const path = paths[i % paths.length]!;
      const a = await get(sc, path, path === '/slow-read' ? { method: 'POST', body: big } : {});
      return { path, a };
    });
  const results = await round();
  const rssRound1 = rssBytes(sc.pid);
  results.push(...(await round()));
  const rssRound2 = rssBytes(sc.pid);
  const unexplained = results.filter(({ path, a }) => {
    if (path === '/ok') return a.status !== 200 || a.cut;
    if (path === '/reset') return !(a.status === 502 || (a.status === 200 && a.cut));
    return a.status !== 504 || a.body !== '{"error":"upstream_timeout"}';
  });
  expect(unexplained.map(({ path, a }) => `${path}: ${a.status} ${a.body.slice(0, 80)}`)).toEqual([]);

  // Refused, and a restart while sockets are open: the listener goes away mid-load.
  const before = await load(20, 4, () => get(sc, '/ok'));
  await upstream.stopListening();
  const down = await load(40, 8, () => get(sc, '/ok'));
  await upstream.listen();
  const after = await load(40, 8, () => get(sc, '/ok'));
  expect([...before, ...after].filter((a) => a.status !== 200)).toEqual([]);
  expect(down.filter((a) => !(a.status === 502 && a.body === '{"error":"upstream_unavailable"}'))).toEqual([]);
  expect(await metric(sc.adminUrl, 'trusted_proxy_upstream_errors_total', { kind: 'refused' })).toBeGreaterThanOrEqual(40);

  const fds1 = await fdsSettle(sc.pid, fds0 + 4);
  expect(fds1).toBeLessThanOrEqual(fds0 + 4);
  expect(rssRound2).toBeLessThan(rssRound1 + 32 * 1048576);
  rows.push([
    'upstream resets mid-response, slow to answer (504), slow to read a 4 MB body (504)',
    N,
    answers(results.map((r) => r.a)),
    unexplained.length,
    `${fds0} → ${fds1}`,
    `${mb(rss0)} → round 1 ${mb(rssRound1)} → round 2 ${mb(rssRound2)} (bound: round 1 + 32 MB)`,
  ]);
  rows.push([
    'upstream refused, then restarted while sockets were open',
    100,
    `before ${answers(before)}; down ${answers(down)}; after ${answers(after)}`,
    0,
    `${fds0} → ${fds1}`,
    `${mb(rss0)} → ${mb(rssBytes(sc.pid))}`,
  ]);
}, 120_000);

test('WebSockets the upstream drops, beside ones that stay: all released, none left open', async () => {
  const sc = await start();
  const fds0 = fdCount(sc.pid);
  const rss0 = rssBytes(sc.pid);
  const ws = sc.url.replace('http', 'ws');
  const outcomes = await load(60, 12, async (i) => {
    const drop = i % 2 === 0;
    const socket = await openWebSocket(`${ws}/${drop ? 'ws-drop' : 'ws'}`, ALICE);
    const c = closed(socket, 5000);
    if (!drop) {
      expect(await echo(socket, `m${i}`)).toBe(`m${i}`);
      socket.close(1000);
    }
    return (await c).code;
  });
  // Dropped by the upstream: the client sees an abnormal close (1006), never a hang.
  expect(outcomes.filter((o, i) => o !== (i % 2 === 0 ? 1006 : 1000))).toEqual([]);
  await waitFor(async () => (await metric(sc.adminUrl, 'trusted_proxy_websockets_open')) === 0, 'no WebSocket left open', 10_000);
  expect(await get(sc, '/ok')).toMatchObject({ status: 200 });
  const fds1 = await fdsSettle(sc.pid, fds0 + 4);
  expect(fds1).toBeLessThanOrEqual(fds0 + 4);
  rows.push([
    'upstream drops WebSockets (half of 60; the rest closed by the client)',
    60,
    Object.entries(tally(outcomes))
      .map(([k, v]) => `close ${k}×${v}`)
      .join(', '),
    0,
    `${fds0} → ${fds1}`,
    `${mb(rss0)} → ${mb(rssBytes(sc.pid))}`,
  ]);
}, 60_000);

test('keys rotated, removed, truncated and made unreadable under load: never an unverifiable assertion, not-ready instead of unsigned', async () => {
  // Without the capabilities that bypass file modes, so an unreadable folder is unreadable.
  const sc = await start({}, { honourFileModes: true });
  const installed = [TEST_KEY];
  const from = upstream.assertions.length;
  const k1 = join(sc.keysDir, 'k1');
  const replaceKey = (bytes: Buffer) => {
    const staged = join(sc.dir, 'k1.staged');
    writeFileSync(staged, bytes);
    renameSync(staged, k1);
  };
  const ready = async () => (await request(`${sc.adminUrl}/readyz`)).status;
  let stop = false;
  const seen: Answer[] = [];
  const traffic = load(64, 8, async () => {
    while (!stop) seen.push(await get(sc, '/ok'));
  });
  const phases: string[] = [];
  try {
    for (let round = 0; round < 2; round++) {
      const next = randomBytes(32);
      installed.push(next);
      replaceKey(next);
      await waitFor(
        async () => (await metric(sc.adminUrl, 'trusted_proxy_key_reloads_total', { result: 'applied' })) >= 2 + round,
        'the rotated key applied',
        10_000,
      );
      phases.push('rotated');
    }
    rmSync(k1);
    await waitFor(async () => (await ready()) === 503, 'not ready without a key', 10_000);
    expect((await get(sc, '/ok')).body).toBe('{"error":"assertion_key_unavailable"}');
    phases.push('removed');
    replaceKey(installed.at(-1)!);
    await waitFor(async () => (await ready()) === 200, 'ready again', 10_000);
    replaceKey(Buffer.from('short'));
    await waitFor(async () => (await ready()) === 503, 'not ready with a truncated key', 10_000);
    phases.push('truncated');
    replaceKey(installed.at(-1)!);
    await waitFor(async () => (await ready()) === 200, 'ready again', 10_000);
    chmodSync(sc.keysDir, 0o000);
    await waitFor(async () => (await ready()) === 503, 'not ready with an unreadable folder', 10_000);
    phases.push('unreadable');
    chmodSync(sc.keysDir, 0o700);
    await waitFor(async () => (await ready()) === 200, 'ready again', 10_000);
  } finally {
    stop = true;
    await traffic;
  }
  const tokens = upstream.assertions.slice(from);
  expect(unverifiable(tokens, installed)).toBe(0);
  expect(seen.filter((a) => !(a.status === 200 || (a.status === 503 && a.body === '{"error":"assertion_key_unavailable"}')))).toEqual([]);
  // Every 200 was a forwarded request with an assertion (none went unsigned).
  expect(tokens.length).toBe(seen.filter((a) => a.status === 200).length);
  expect(seen.some((a) => a.status === 503)).toBe(true);
  rows.push([
    `keys ${phases.join(', ')} (file modes honoured)`,
    seen.length,
    answers(seen),
    0,
    `assertions at the upstream: ${tokens.length}, unverifiable: 0`,
    '',
  ]);
}, 120_000);

test('config rewritten every 100 ms and once invalid, under load: no request fails because of a reload', async () => {
  const sc = await start({ gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['a'] } } });
  const base = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstream.url, timeoutSeconds: 1.5 },
    trust: { allowLoopback: true, cidrs: ['127.0.0.1'] },
    assertion: { keysDir: sc.keysDir },
  };
  let stop = false;
  const seen: Answer[] = [];
  const traffic = load(64, 8, async () => {
    while (!stop) seen.push(await get(sc, '/ok'));
  });
  const applied0 = await metric(sc.adminUrl, 'trusted_proxy_config_reloads_total', { result: 'applied' });
  for (let i = 0; i < 50; i++) {
    if (i === 25) sc.writeConfig('listen: [this is: not valid\n');
    else sc.writeConfig({ ...base, gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: [`s${i}`] } } });
    await new Promise((r) => setTimeout(r, 100));
    // Hold the invalid file long enough for the watcher (1 s) to see it.
    if (i === 25)
      await waitFor(
        async () => (await metric(sc.adminUrl, 'trusted_proxy_config_reloads_total', { result: 'rejected' })) >= 1,
        'the invalid file rejected',
        5000,
      );
  }
  stop = true;
  await traffic;
  const applied = (await metric(sc.adminUrl, 'trusted_proxy_config_reloads_total', { result: 'applied' })) - applied0;
  expect(applied).toBeGreaterThanOrEqual(3);
  expect(seen.filter((a) => a.status !== 200)).toEqual([]);
  rows.push([`config reloaded ${applied} times (written 49 times, 100 ms apart) and 1 invalid file rejected`, seen.length, answers(seen), 0, '', '']);
}, 60_000);

test('SIGTERM under HTTP and WebSocket load: every in-flight request completes, every WebSocket gets 1001, exit 0', async () => {
  const sc = await start({ listen: { shutdownGraceSeconds: 8 } });
  const sockets = await load(24, 8, () => openWebSocket(`${sc.url.replace('http', 'ws')}/ws`, ALICE));
  const closes = sockets.map((s) => closed(s, 10_000));
  const reached = upstream.assertions.length;
  const inFlight = Array.from({ length: 48 }, () => get(sc, '/slow-ok'));
  // In flight means at the gateway: a fixed wait let a loaded machine signal while some
  // connections still sat in the listen queue, which the closing listener resets.
  await waitFor(() => upstream.assertions.length - reached >= inFlight.length, 'every request at the gateway', 10_000);
  sc.child.kill('SIGTERM');
  const done = await Promise.all(inFlight);
  const codes = await Promise.all(closes);
  const exit = await sc.exited;
  expect(done.filter((a) => a.status !== 200 || a.body !== 'slow ok')).toEqual([]);
  expect(codes.filter((c) => c.code !== 1001)).toEqual([]);
  expect(exit).toEqual({ code: 0, signal: null });
  rows.push([
    'SIGTERM with 48 requests in flight and 24 WebSockets open',
    72,
    `requests ${answers(done)}; WebSockets closed ${Object.entries(tally(codes.map((c) => c.code)))
      .map(([k, v]) => `${k}×${v}`)
      .join(', ')}; exit 0`,
    0,
    '',
    '',
  ]);
}, 60_000);
