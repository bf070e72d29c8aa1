// The image's runtime tree, built by the script the Dockerfile runs: only production
// dependencies, and the sidecar starts from it as a non-root user that cannot write it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../chart/k8s.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/upstream.js';

const UID = 65532;
let work: string;
let tree: string;
let upstream: RecordingUpstream;
let child: ChildProcess | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tps-image-'));
  chmodSync(work, 0o755);
  tree = join(work, 'app');
  execFileSync(join(ROOT, 'scripts/build-runtime-tree.sh'), [tree], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}, 150_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await upstream?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Every installed package, by its path under the tree (nested ones included). */
function installedPackages(dir: string, prefix = 'node_modules'): string[] {
  const base = join(dir, prefix);
  if (!existsSync(base)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(base)) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@') ? readdirSync(join(base, entry)).map((n) => `${entry}/${n}`) : [entry];
    for (const name of names) {
      const path = `${prefix}/${name}`;
      out.push(path, ...installedPackages(dir, `${path}/node_modules`));
    }
  }
  return out;
}

test('the tree holds dist, package.json and production dependencies only', () => {
  expect(readdirSync(tree).sort()).toEqual(['dist', 'node_modules', 'package.json']);
  expect(existsSync(join(tree, 'dist/cli/main.js'))).toBe(true);
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const installed = installedPackages(tree);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies)) expect(installed).toContain(`node_modules/${dep}`);
  for (const dev of ['jest', 'typescript', '@swc/core', 'fast-check', 'playwright-core', 'autocannon', 'kubernetes-models']) {
    expect(installed).not.toContain(`node_modules/${dev}`);
  }
  for (const path of installed) {
    const entry = lock.packages[path];
    expect([path, entry !== undefined && entry.dev !== true]).toEqual([path, true]);
  }
});

test('the sidecar starts from the tree as a non-root user with the tree read-only, and proxies', async () => {
  upstream = await startRecordingUpstream();
  const keys = join(work, 'keys');
  execFileSync(process.execPath, [join(tree, 'dist/cli/main.js'), 'keygen', '--keys-dir', keys, '--kid', 'k1']);
  chownSync(keys, UID, UID);
  chownSync(join(keys, 'k1'), UID, UID);
  const config = join(work, 'sidecar.yaml');
  writeFileSync(
    config,
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'admin: { host: 127.0.0.1, port: 0 }',
      `upstream: { url: "${upstream.url}" }`,
      'trust: { allowLoopback: true }',
      `assertion: { keysDir: "${keys}" }`,
    ].join('\n'),
  );
  // The tree stays root's: the runtime user can read it and write nothing in it.
  execFileSync('chmod', ['-R', 'a-w', tree]);
  child = spawn(
    'setpriv',
    [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, join(tree, 'dist/cli/main.js'), 'serve', '--config', config],
    { cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr: string[] = [];
  child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
  const listening = await new Promise<{ data: { port: number }; admin: { port: number } }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line; stderr: ${stderr.join('')}`)), 20_000);
    child!.once('exit', (code) => reject(new Error(`sidecar exited ${code}: ${stderr.join('')}`)));
    createInterface({ input: child!.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; data: { port: number }; admin: { port: number } };
        if (entry.msg === 'listening') {
          clearTimeout(timer);
          resolve(entry);
        }
      } catch {
        /* not a log line */
      }
    });
  });
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1)).toEqual([String(UID), String(UID)]);

  const res = await fetch(`http://127.0.0.1:${listening.data.port}/hello`, { headers: { 'x-auth-request-email': 'alice@example.com' } });
  expect(res.status).toBe(200);
  expect(upstream.received.at(-1)!.headers['x-forwarded-user']).toBe('alice@example.com');
  expect(upstream.received.at(-1)!.headers['x-trusted-proxy-assertion']).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  const ready = await fetch(`http://127.0.0.1:${listening.admin.port}/readyz`);
  expect(ready.status).toBe(200);

  const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
}, 60_000);

test('the Dockerfile builds with the same script and runs as that user, with the CLI as entrypoint', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  expect(dockerfile).toContain('RUN scripts/build-runtime-tree.sh /out');
  expect(dockerfile).toMatch(/^USER 65532:65532$/m);
  expect(dockerfile).toMatch(/^ENTRYPOINT \["\/nodejs\/bin\/node", "\/app\/dist\/cli\/main\.js"\]$/m);
  expect(dockerfile).toMatch(/^FROM gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m);
  expect(dockerfile).toContain('org.opencontainers.image.version');
});
