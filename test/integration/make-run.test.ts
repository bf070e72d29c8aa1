// `make run`'s script, started for real: it must print two curl lines, the first showing the
// identity the demo gateway verified, the second a 401; Ctrl-C or TERM must stop everything
// with exit 0; a port in use is named before anything starts. It runs on free ports
// (PORT, ADMIN_PORT, GATEWAY_PORT), never the fixed defaults.
// It runs from a scratch root (the script, examples and build linked in) so the generated
// development key lands there and the checkout's own `.run` is never touched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { COMMAND_PATH } from '../support/command.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

const REPO = resolve('.');

let root: string;
let run: ChildProcess | undefined;
let output = '';
let ports: { PORT: number; ADMIN_PORT: number; GATEWAY_PORT: number };
const checkoutKey = () => {
  const path = join(REPO, '.run/keys/dev');
  return existsSync(path) ? readFileSync(path).toString('hex') : undefined;
};
const keyBefore = checkoutKey();

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

beforeAll(async () => {
  if (!existsSync(join(REPO, COMMAND_PATH))) throw new Error('dist/ is missing: run "make build" (make test builds before jest runs)');
  ports = { PORT: await freePort(), ADMIN_PORT: await freePort(), GATEWAY_PORT: await freePort() };
  root = mkdtempSync(join(tmpdir(), 'tps-make-run-'));
  mkdirSync(join(root, 'scripts'));
  copyFileSync(join(REPO, 'scripts/run.sh'), join(root, 'scripts/run.sh'));
  for (const name of ['dist', 'examples', 'node_modules', 'package.json']) symlinkSync(join(REPO, name), join(root, name));
});

afterAll(async () => {
  if (run && run.exitCode === null && run.signalCode === null) {
    try {
      process.kill(-run.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The command lines the script prints, by the heading above each. */
function curlAfter(heading: string): string {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.includes(heading));
  const line = lines.slice(at + 1).find((l) => l.trim().startsWith('curl '));
  if (at < 0 || !line) throw new Error(`no curl line under "${heading}" in:\n${output}`);
  return line.trim();
}

function sh(command: string): string {
  const r = spawnSync('bash', ['-c', command], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${command} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Starts the script in its own process group (as a terminal's Ctrl-C would reach it). */
function startRun(env: Record<string, string | number> = ports): { exited: Promise<number | null> } {
  output = '';
  run = spawn('bash', [join(root, 'scripts/run.sh')], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
    },
  });
  run.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  run.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return { exited: new Promise<number | null>((done) => run!.once('exit', (code) => done(code))) };
}

function exitWithin(exited: Promise<number | null>, what: string): Promise<number | null> {
  return Promise.race([
    exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`make run did not stop on ${what}:\n${output}`)), 10_000).unref()),
  ]);
}

test('make run: the allowed curl shows the verified identity, the refused one a 401; Ctrl-C stops it all with exit 0', async () => {
  const { exited } = startRun();
  await waitFor(() => output.includes('Ctrl-C stops both.'), 'the script to print its instructions', 20_000, 50);

  expect(output).toContain('WARNING: generated a DEVELOPMENT signing key');
  const key = join(root, '.run/keys/dev');
  expect(statSync(key).size).toBe(32);
  expect(statSync(key).mode & 0o777).toBe(0o400);

  const allowed = curlAfter('Allowed');
  expect(allowed.startsWith(`curl -s http://127.0.0.1:${ports.PORT}/`)).toBe(true);
  const body = JSON.parse(sh(allowed)) as { gateway: string; verified: Record<string, unknown>; plainUserHeader: string };
  expect(body).toMatchObject({
    gateway: 'demo',
    verified: { user: 'alice@example.com', groups: ['readers'], method: 'GET', uri: `http://127.0.0.1:${ports.PORT}/hello`, kid: 'dev' },
    plainUserHeader: 'alice@example.com',
  });

  const refused = sh(curlAfter('Refused'));
  expect(refused).toMatch(/^HTTP\/1\.1 401 /);
  expect(refused).toContain('{"error":"identity_duplicated"}');
  // The refused request's identity values are not echoed back.
  expect(refused).not.toContain('admin@example.com');

  process.kill(-run!.pid!, 'SIGINT');
  expect(await exitWithin(exited, 'Ctrl-C')).toBe(0);
  for (const port of Object.values(ports)) expect({ port, free: await portFree(port) }).toEqual({ port, free: true });
  expect(output).toMatch(/"msg":"stopped"/);
  // The checkout's own key folder was not touched by this run.
  expect(checkoutKey()).toEqual(keyBefore);
});

test('TERM stops both with exit 0', async () => {
  const { exited } = startRun();
  await waitFor(() => output.includes('Ctrl-C stops both.'), 'the script to print its instructions', 20_000, 50);
  // To the script alone, as a process manager sends it.
  run!.kill('SIGTERM');
  expect(await exitWithin(exited, 'TERM')).toBe(0);
  for (const port of Object.values(ports)) expect({ port, free: await portFree(port) }).toEqual({ port, free: true });
});

test('a port in use is named before anything starts, and no banner claims the sidecar runs', async () => {
  const holder = createServer();
  await new Promise<void>((done) => holder.listen(ports.GATEWAY_PORT, '127.0.0.1', done));
  try {
    const { exited } = startRun();
    expect(await exitWithin(exited, 'a taken port')).toBe(2);
    expect(output).toContain(`make run: port ${ports.GATEWAY_PORT} on 127.0.0.1 is in use`);
    expect(output).not.toContain('is running');
    expect(output).not.toContain('EADDRINUSE');
  } finally {
    await new Promise((done) => holder.close(done));
  }
});
