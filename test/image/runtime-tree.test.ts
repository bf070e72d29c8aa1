// The image's runtime tree, built by the script the Dockerfile runs: only production
// dependencies, and the sidecar starts from it as a non-root user that cannot write it.
// Its command is one bundled file; what that file still loads at run time is checked here.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../chart/k8s.js';
import { COMMAND_PATH } from '../support/command.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

const UID = 65532;
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
// Preloaded into the sidecar: reports on stderr every module file it resolves, by import or
// require alike, so a test sees what the bundle really loads from disk.
const LOADED = 'module-load ';
const RECORD_LOADS = `data:text/javascript,${encodeURIComponent(
  `import { registerHooks } from 'node:module';
registerHooks({ resolve(specifier, context, next) {
  const r = next(specifier, context);
  if (r.url.startsWith('file:')) process.stderr.write(${JSON.stringify(LOADED)} + r.url + '\\n');
  return r;
} });`,
)}`;
let work: string;
let tree: string;
let keys: string;
let upstream: RecordingUpstream;
const children: ChildProcess[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tps-image-'));
  chmodSync(work, 0o755);
  tree = join(work, 'app');
  execFileSync(join(ROOT, 'scripts/build-runtime-tree.sh'), [tree], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  keys = join(work, 'keys');
  execFileSync(process.execPath, [join(tree, COMMAND_PATH), 'keygen', '--keys-dir', keys, '--kid', 'k1']);
  chownSync(keys, UID, UID);
  chownSync(join(keys, 'k1'), UID, UID);
  // The tree stays root's: the runtime user can read it and write nothing in it.
  execFileSync('chmod', ['-R', 'a-w', tree]);
}, 150_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
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
  expect(existsSync(join(tree, COMMAND_PATH))).toBe(true);
  // The library the package exports is tsc's output, beside the command's bundle.
  expect(existsSync(join(tree, 'dist/index.js'))).toBe(true);
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

interface TreeSidecar {
  listening: { data: { port: number }; admin: { port: number }; version: string };
  /** Stops it with SIGTERM; its exit code and every module file it loaded, relative to the tree. */
  stop(): Promise<{ code: number | null; loaded: string[] }>;
}

/** `serve` from the tree's command as the runtime user, with the tree read-only. */
async function serveFromTree(configLines: string[]): Promise<TreeSidecar> {
  const config = join(work, 'sidecar.yaml');
  writeFileSync(
    config,
    ['listen: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0 }', `assertion: { keysDir: "${keys}" }`, ...configLines].join('\n'),
  );
  const proc = spawn(
    'setpriv',
    [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, '--import', RECORD_LOADS, join(tree, COMMAND_PATH), 'serve', '--config', config],
    { cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(proc);
  const stderr: string[] = [];
  proc.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
  const closed = new Promise<number | null>((resolve) => proc.once('close', resolve));
  const output = () =>
    stderr
      .join('')
      .split('\n')
      .filter((l) => !l.startsWith(LOADED))
      .join('\n');
  const listening = await new Promise<TreeSidecar['listening']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line; stderr: ${output()}`)), 20_000);
    proc.once('exit', (code) => reject(new Error(`sidecar exited ${code}: ${output()}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as TreeSidecar['listening'] & { msg?: string };
        if (entry.msg === 'listening') {
          clearTimeout(timer);
          resolve(entry);
        }
      } catch {
        /* not a log line */
      }
    });
  });
  const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
  expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1)).toEqual([String(UID), String(UID)]);
  return {
    listening,
    async stop() {
      proc.kill('SIGTERM');
      // 'close' comes after the pipes are drained, so every report has arrived.
      const code = await closed;
      const urls = stderr
        .join('')
        .split('\n')
        .filter((l) => l.startsWith(LOADED))
        .map((l) => l.slice(LOADED.length));
      return { code, loaded: [...new Set(urls)].map((url) => relative(tree, fileURLToPath(url))) };
    },
  };
}

test('the command is one file: it requires Node built-ins, and imports the Kubernetes client and undici on demand', () => {
  const bundle = readFileSync(join(tree, COMMAND_PATH), 'utf8');
  // One static import, of the require() that loads built-ins: importing one would read every
  // export of it, lazy ones included (node:http's loads Node's fetch).
  const statics = [...bundle.matchAll(/^import\s[^;]*?\bfrom\s*(["'])([^"']+)\1/gm)].map((m) => m[2]!);
  expect(statics).toEqual(['node:module']);
  const required = [...bundle.matchAll(/\b(?:__)?require\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]!);
  expect(required).toContain('node:http');
  expect(required.filter((s) => !isBuiltin(s))).toEqual([]);
  // esbuild prints the code's own strings with double quotes; comments it keeps use others.
  expect([...bundle.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]).sort()).toEqual(['@kubernetes/client-node', 'undici']);
});

test('the sidecar starts from the tree as a non-root user with the tree read-only, and proxies', async () => {
  upstream = await startRecordingUpstream();
  const sidecar = await serveFromTree([`upstream: { url: "${upstream.url}" }`, 'trust: { allowLoopback: true, cidrs: [127.0.0.1] }']);
  // The version comes from the tree's package.json, found relative to the bundle.
  expect(sidecar.listening.version).toBe(VERSION);

  const res = await fetch(`http://127.0.0.1:${sidecar.listening.data.port}/hello`, { headers: { 'x-auth-request-email': 'alice@example.com' } });
  expect(res.status).toBe(200);
  expect(upstream.received.at(-1)!.headers['x-forwarded-user']).toBe('alice@example.com');
  expect(upstream.received.at(-1)!.headers['x-trusted-proxy-assertion']).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  const ready = await fetch(`http://127.0.0.1:${sidecar.listening.admin.port}/readyz`);
  expect(ready.status).toBe(200);

  const { code, loaded } = await sidecar.stop();
  expect(code).toBe(0);
  // From disk: the bundle alone (every package it uses at start is bundled in); no compiled module, no package.
  expect(loaded).toEqual([COMMAND_PATH]);
}, 60_000);

test('with a discovery source configured, the command loads the Kubernetes client and undici from the tree', async () => {
  // No API server: the client loads, then discovery reports it cannot reach one.
  const sidecar = await serveFromTree(['trust: { discovery: { pods: [ { namespace: traefik, labelSelector: "app=traefik" } ] } }']);
  const { code, loaded } = await sidecar.stop();
  expect(code).toBe(0);
  expect(loaded).toContain('node_modules/@kubernetes/client-node/dist/index.js');
  expect(loaded).toContain('node_modules/undici/index.js');
  expect(loaded.filter((path) => !path.startsWith('node_modules/'))).toEqual([COMMAND_PATH]);
}, 60_000);

test('the Dockerfile builds with the same script and runs as that user, with the CLI as entrypoint', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  expect(dockerfile).toContain('RUN scripts/build-runtime-tree.sh /out');
  expect(dockerfile).toMatch(/^USER 65532:65532$/m);
  expect(dockerfile).toContain(`ENTRYPOINT ["/nodejs/bin/node", "/app/${COMMAND_PATH}"]\n`);
  expect(dockerfile).toMatch(/^FROM gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m);
  expect(dockerfile).toContain('org.opencontainers.image.version');
  // Every file the build stage copies from the context gets past .dockerignore.
  const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1));
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/)).map((p) => p.replace(/\/$/, ''));
  expect(copied).toContain('scripts/bundle.mjs');
  expect(copied.filter((p) => !allowed.includes(p) && !allowed.includes(`${p}/**`))).toEqual([]);
});
