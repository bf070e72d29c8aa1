// The package as a user installs it: `npm pack` of the built checkout, installed into an
// empty folder with npm (production dependencies from the registry), then the command run
// through npx as the README's "Use" shows it: --help, keygen, check-config on the shipped
// examples, and serve with this Node (24).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { ROOT } from '../chart/k8s.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

const run = promisify(execFile);
const PACKAGE = 'node_modules/trusted-proxy-sidecar';
let work: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tps-package-'));
  // This Node and its npm first, as for a user who installed Node 24.
  env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`, NODE_OPTIONS: '' };
  const { stdout } = await run('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: ROOT, env });
  const tarball = stdout.trim().split('\n').at(-1)!;
  const app = join(work, 'app');
  await run('mkdir', [app]);
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', join(work, tarball)], { cwd: app, env, timeout: 240_000 });
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const npx = (args: string[]) => run('npx', ['--no-install', 'trusted-proxy-sidecar', ...args], { cwd: join(work, 'app'), env, timeout: 30_000 });

test('npx trusted-proxy-sidecar --help lists the subcommands', async () => {
  const { stdout } = await npx(['--help']);
  for (const command of ['serve', 'check-config', 'keygen', 'verify', 'doctor', 'gateway-config']) expect(stdout).toContain(command);
});

test('keygen, then check-config on every shipped example, then serve it', async () => {
  const app = join(work, 'app');
  await npx(['keygen', '--keys-dir', '.run/keys', '--kid', 'dev']);
  const examples = readdirSync(join(app, PACKAGE, 'examples'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.yaml'));
  expect(examples).toContain('dev/sidecar.yaml');
  for (const example of examples) {
    const { stdout } = await npx(['check-config', '--keys', '--config', join(PACKAGE, 'examples', example)]);
    expect(stdout).toMatch(/ok/i);
  }

  // The dev example as the README has users copy it, on free ports.
  const [port, admin] = [await freePort(), await freePort()];
  const doc = parseDocument(readFileSync(join(app, PACKAGE, 'examples/dev/sidecar.yaml'), 'utf8'));
  doc.setIn(['listen', 'port'], port);
  doc.setIn(['admin', 'port'], admin);
  writeFileSync(join(app, 'sidecar.yaml'), String(doc));
  const child = spawn('npx', ['--no-install', 'trusted-proxy-sidecar', 'serve', '--config', 'sidecar.yaml'], {
    cwd: app,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${admin}/healthz`).catch(() => undefined))?.status === 200 || child.exitCode !== null,
      'the installed sidecar to answer',
      20_000,
      100,
    );
    expect({ exit: child.exitCode, output: child.exitCode === null ? '' : output }).toEqual({ exit: null, output: '' });
    expect(output).toMatch(/"msg":"listening"/);
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
  }
  await exited;
});
