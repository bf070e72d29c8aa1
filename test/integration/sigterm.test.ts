// SIGTERM on the real command (`node dist/sidecar.js serve`): requests in flight finish,
// new connections are refused, WebSockets get 1001, and the process exits 0 within the grace.
// And the drain before it (the preStop hook's `drain`): readiness fails, connections close
// after their response, and the port still takes connections for listen.drainSeconds.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request, type ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { TEST_KEY } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { closed, echo, openWebSocket } from '../support/websocket.js';
import { COMMAND as MAIN } from '../support/command.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };
const SLOW_MS = 1200;

let upstream: RecordingUpstream;
const timers = new Set<NodeJS.Timeout>();
let child: ChildProcess | undefined;
let dir: string | undefined;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "make build" (make test builds before jest runs)`);
  upstream = await startRecordingUpstream((req, res) => {
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(`slept ${ms}`), ms);
    timers.add(timer);
    (res as ServerResponse).once('close', () => clearTimeout(timer));
  });
});
afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
afterAll(async () => {
  for (const t of timers) clearTimeout(t);
  await upstream.close();
});

interface Running {
  child: ChildProcess;
  url: string;
  adminUrl: string;
  port: number;
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function serve(shutdownGraceSeconds: number, drainSeconds = 3): Promise<Running & { configPath: string }> {
  dir = mkdtempSync(join(tmpdir(), 'tps-sigterm-'));
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'k1'), TEST_KEY);
  const configPath = join(dir, 'sidecar.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: { host: '127.0.0.1', port: 0, shutdownGraceSeconds, drainSeconds },
      admin: { host: '127.0.0.1', port: 0 },
      upstream: { url: upstream.url },
      trust: { allowLoopback: true, cidrs: ['127.0.0.1'] },
      assertion: { keysDir },
    }),
  );
  const proc = spawn(process.execPath, [MAIN, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((done) =>
    proc.once('exit', (code, signal) => done({ code, signal, at: Date.now() })),
  );
  const listening = await waitFor(
    () => {
      if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}: ${stderr}`);
      return logs.find((l) => l.msg === 'listening') as { data: { port: number }; admin: { port: number } } | undefined;
    },
    'the sidecar to listen',
    10_000,
  );
  return {
    child: proc,
    url: `http://127.0.0.1:${listening.data.port}`,
    adminUrl: `http://127.0.0.1:${listening.admin.port}`,
    port: listening.data.port,
    logs,
    exited,
    configPath,
  };
}

/** 'refused' when nothing accepts connections on the port any more. */
function tryConnect(port: number): Promise<'accepted' | 'refused'> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done('accepted');
    });
    socket.once('error', () => done('refused'));
  });
}

test('SIGTERM drains: in-flight requests finish 200, new connections are refused, WebSockets get 1001, exit 0', async () => {
  const grace = 4;
  const sc = await serve(grace);
  const ws = await openWebSocket(`${sc.url.replace('http', 'ws')}/ws`, ALICE);
  expect(await echo(ws, 'before')).toBe('before');
  const wsClosed = closed(ws);

  const slowPath = `/slow?ms=${SLOW_MS}`;
  const inFlight = fetch(`${sc.url}${slowPath}`, { headers: ALICE }).then(async (r) => ({ status: r.status, body: await r.text(), at: Date.now() }));
  await waitFor(() => upstream.received.some((r) => r.url === slowPath), 'the slow request to reach the upstream');

  const signalled = Date.now();
  sc.child.kill('SIGTERM');

  expect(await wsClosed).toEqual({ code: 1001, reason: 'server shutting down' });
  await waitFor(async () => (await tryConnect(sc.port)) === 'refused', 'new connections refused', 2000);
  // Readiness drops while draining, so a Service stops sending traffic here.
  const ready = await fetch(`${sc.adminUrl}/readyz`);
  expect(ready.status).toBe(503);
  expect(((await ready.json()) as { problems: string[] }).problems).toContain('shutting down');

  const done = await inFlight;
  expect(done).toMatchObject({ status: 200, body: `slept ${SLOW_MS}` });
  // The refusal of new connections was seen while the request was still in flight.
  expect(done.at - signalled).toBeGreaterThanOrEqual(SLOW_MS / 2);

  const exit = await sc.exited;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at - signalled).toBeLessThan(grace * 1000);
  expect(sc.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
  expect(sc.logs.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
});

test('a request still running when the grace ends is cut off, and the process still exits 0', async () => {
  const grace = 0.5;
  const sc = await serve(grace);
  const stuck = fetch(`${sc.url}/slow?ms=20000`, { headers: ALICE }).then(
    async (r) =>
      r.text().then(
        () => 'completed',
        () => 'cut off',
      ),
    () => 'cut off',
  );
  await waitFor(() => upstream.received.some((r) => r.url === '/slow?ms=20000'), 'the stuck request to reach the upstream');
  const signalled = Date.now();
  sc.child.kill('SIGTERM');
  const exit = await sc.exited;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at - signalled).toBeGreaterThanOrEqual(grace * 1000 - 50);
  expect(exit.at - signalled).toBeLessThan(grace * 1000 + 3000);
  expect(await stuck).toBe('cut off');
});

/** One GET on the agent's connection: its status, Connection header and socket. */
function get(url: string, agent: Agent): Promise<{ status: number; connection: string | undefined; body: string }> {
  return new Promise((done, fail) => {
    const req = request(url, { agent, headers: ALICE }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.once('end', () => done({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
    });
    req.once('error', fail).end();
  });
}

test('drain: readiness fails, idle connections close, responses close theirs, the port takes connections for drainSeconds, then SIGTERM exits', async () => {
  const drainSeconds = 3;
  const sc = await serve(4, drainSeconds);
  // A client's idle keep-alive connection, as a proxy holds them.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const before = await get(`${sc.url}/before`, agent);
  expect(before).toMatchObject({ status: 200, connection: 'keep-alive' });
  const idleSocket = Object.values(agent.freeSockets).flat()[0]!;
  const idleClosed = new Promise<void>((done) => idleSocket.once('close', () => done()));
  const slowPath = `/slow?ms=${drainSeconds * 1000 + 1000}`;
  const inFlight = fetch(`${sc.url}${slowPath}`, { headers: ALICE }).then(async (r) => ({ status: r.status, body: await r.text() }));
  await waitFor(() => upstream.received.some((r) => r.url === slowPath), 'the slow request to reach the upstream');

  // The preStop hook's command, run as the hook runs it: it signals and waits drainSeconds.
  const started = Date.now();
  const hook = promisify(execFile)(process.execPath, [MAIN, 'drain', '--config', sc.configPath]);
  await waitFor(() => sc.logs.some((l) => l.msg === 'draining'), 'the sidecar to begin draining');
  await idleClosed;
  const ready = await fetch(`${sc.adminUrl}/readyz`);
  expect(ready.status).toBe(503);
  // A new connection in the window is still served, and told to close.
  const during = await get(`${sc.url}/during`, new Agent({ keepAlive: true }));
  expect(during).toMatchObject({ status: 200, connection: 'close' });

  const { stdout } = await hook;
  expect(stdout).toContain(`draining ${sc.child.pid}`);
  expect(Date.now() - started).toBeGreaterThanOrEqual(drainSeconds * 1000);
  await waitFor(async () => (await tryConnect(sc.port)) === 'refused', 'the port to stop listening', 2000);
  expect(sc.child.exitCode).toBeNull();
  expect(await inFlight).toEqual({ status: 200, body: `slept ${drainSeconds * 1000 + 1000}` });

  sc.child.kill('SIGTERM');
  expect(await sc.exited).toMatchObject({ code: 0, signal: null });
  agent.destroy();
});

test('drain with no serve process to signal exits 1 and says so', async () => {
  const sc = await serve(1);
  sc.child.kill('SIGKILL');
  await sc.exited;
  const run = promisify(execFile)(process.execPath, [MAIN, 'drain', '--config', sc.configPath]);
  await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('no serve process') });
});
