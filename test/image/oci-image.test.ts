// The image built without a Docker engine (scripts/build-image-oci.sh: umoci, an OCI
// layout), run by runc as its config says: UID 65532, the Dockerfile's entrypoint and
// command, a read-only root, the config mounted read-only. It must start and answer
// /readyz, and nothing in it may write its own files or offer a shell.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../chart/k8s.js';
import { freePort } from '../../harness/ports.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const CONTAINER = `tps-image-${process.pid}`;
let work: string;
let bundle: string;
let upstream: RecordingUpstream;
let admin: number;
let imageConfig: { config: Record<string, any> };
let started = false;

const runc = (...args: string[]) => execFileSync('runc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tps-oci-'));
  const layout = join(work, 'layout');
  execFileSync(join(ROOT, 'scripts/build-image-oci.sh'), [layout], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  // The image's own config, as a registry would serve it.
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (digest: string) => JSON.parse(readFileSync(join(layout, 'blobs', ...digest.split(':')), 'utf8'));
  imageConfig = blob(blob(index.manifests[0]!.digest).config.digest);

  bundle = join(work, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${layout}:${VERSION}`, bundle], { stdio: 'ignore' });
  upstream = await startRecordingUpstream();
  admin = await freePort();
  const config = join(work, 'config');
  mkdirSync(join(config, 'keys'), { recursive: true });
  writeFileSync(join(config, 'keys', 'k1'), Buffer.alloc(32, 3), { mode: 0o644 });
  writeFileSync(
    join(config, 'sidecar.yaml'),
    `listen: { host: 127.0.0.1, port: ${await freePort()} }\nadmin: { host: 127.0.0.1, port: ${admin} }\nupstream: { url: "${upstream.url}" }\nassertion: { keysDir: /etc/trusted-proxy-sidecar/config/keys }\n`,
  );
  // The runtime's side, as the chart's pod sets it: a read-only root and the config mounted
  // read-only; the host's network (loopback) instead of a pod's, and no cgroup limits.
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.root.readonly = true;
  spec.process.terminal = false;
  spec.linux.namespaces = spec.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
  delete spec.linux.resources;
  delete spec.linux.cgroupsPath;
  spec.mounts.push({ destination: '/etc/trusted-proxy-sidecar/config', type: 'bind', source: config, options: ['rbind', 'ro'] });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  // Detached, the container keeps the stdio it was given: a log file, not this test's pipes.
  const log = openSync(join(work, 'container.log'), 'w');
  try {
    execFileSync('runc', ['run', '--detach', '--bundle', bundle, CONTAINER], { stdio: ['ignore', log, log], timeout: 30_000 });
  } finally {
    closeSync(log);
  }
  started = true;
}, 300_000);

afterAll(async () => {
  if (started) {
    try {
      runc('kill', CONTAINER, 'KILL');
    } catch {
      /* already stopped */
    }
    await waitFor(
      () => !runc('list', '-q').split('\n').includes(CONTAINER) || JSON.parse(runc('state', CONTAINER)).status === 'stopped',
      'the container to stop',
      10_000,
      100,
    );
    runc('delete', '--force', CONTAINER);
  }
  await upstream?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

// The ENV lines of the Dockerfile's runtime stage, one pair each.
const DOCKERFILE_ENV = [
  ...readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .split(/^FROM /m)
    .pop()!
    .matchAll(/^ENV (\S+=\S+)$/gm),
].map((m) => m[1]!);

test("the image says what the Dockerfile says: UID 65532, its environment, node on the bundled command, serve with the chart's config path", () => {
  expect(DOCKERFILE_ENV).toEqual(expect.arrayContaining(['NODE_ENV=production', 'MALLOC_TRIM_THRESHOLD_=131072']));
  expect(imageConfig.config.Env).toEqual(expect.arrayContaining(DOCKERFILE_ENV));
  expect(imageConfig.config).toMatchObject({
    User: '65532:65532',
    WorkingDir: '/app',
    Entrypoint: ['/nodejs/bin/node', '/app/dist/sidecar.js'],
    Cmd: ['serve', '--config', '/etc/trusted-proxy-sidecar/config/sidecar.yaml'],
    ExposedPorts: { '8080/tcp': {}, '9090/tcp': {} },
  });
  // distroless: no shell, no package manager.
  for (const path of ['bin/sh', 'bin/bash', 'usr/bin/apt-get', 'usr/bin/dpkg']) expect([path, existsSync(join(bundle, 'rootfs', path))]).toEqual([path, false]);
});

test("run as its config says, it answers /readyz as UID 65532 in the image's environment and cannot write its root", async () => {
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.status === 200,
    'the container to be ready',
    20_000,
    100,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${readFileSync(join(work, 'container.log'), 'utf8')}`);
  });
  const { pid } = JSON.parse(runc('state', CONTAINER)) as { pid: number };
  expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
  expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toEqual(expect.arrayContaining(DOCKERFILE_ENV));
  let write = '';
  try {
    runc('exec', CONTAINER, '/nodejs/bin/node', '-e', "require('fs').writeFileSync('/app/dist/sidecar.js', '')");
  } catch (err) {
    write = (err as { stderr: string }).stderr;
  }
  expect(write).toMatch(/EROFS|EACCES/);
});
