// For real: a request from a pod IP passes while the pod exists and is refused once the
// API server reports it deleted. The "pod" is a network namespace with its own address;
// the sidecar is `serve` in another namespace, in-cluster through env + service-account
// folder; the test API server and the gateway listen on the bridge. Measures how long
// the DELETED event takes to reach the decision path.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { startKubeApiServer, type KubeApiServer } from '../../support/kube-apiserver.js';
import { createNetwork, type TestNetwork } from '../../../harness/netns.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../../harness/upstream.js';
import { waitFor } from '../../../harness/wait.js';
import { pod } from './objects.js';
import { COMMAND as MAIN } from '../../support/command.js';

const SOURCE = 'pods:traefik/app.kubernetes.io/name=traefik';

// Runs in the proxy's namespace: requests on one keep-alive connection, one after the
// other, until the first refusal (bounded by count and time); reports wall-clock times.
const CLIENT = `
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const [url] = process.argv.slice(1);
const deadline = Date.now() + 20000;
let okAt = 0, n = 0;
const next = () => {
  if (n++ > 200000 || Date.now() > deadline) { console.log('gave-up'); process.exit(1); }
  http.get(url, { agent, headers: { 'x-auth-request-email': 'alice@example.com' } }, (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 200) { if (!okAt) console.log('first-ok'); okAt = Date.now(); return next(); }
      console.log(JSON.stringify({ status: res.statusCode, refusedAt: Date.now(), lastOkAt: okAt, requests: n }));
      process.exit(0);
    });
  }).on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
};
next();
`;

let net: TestNetwork | undefined;
let api: KubeApiServer | undefined;
let upstream: RecordingUpstream | undefined;
let dir: string | undefined;
afterAll(async () => {
  await net?.teardown();
  await upstream?.close();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function lines(child: ChildProcess, into: string[]): void {
  createInterface({ input: child.stdout! }).on('line', (l) => into.push(l));
}

test('a request from a just-deleted pod IP is refused; propagation time measured', async () => {
  net = await createNetwork(['proxy', 'sidecar']);
  const proxy = net.host('proxy');
  const side = net.host('sidecar');
  const bridge = net.subnet.replace(/\.0\/24$/, '.1');
  api = await startKubeApiServer({ host: bridge });
  upstream = await startRecordingUpstream(undefined, bridge);
  api.upsert('pods', pod('traefik-1', [proxy.address]));
  api.upsert('pods', pod('traefik-2', ['10.0.0.2']));

  dir = mkdtempSync(join(tmpdir(), 'tps-netns-'));
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'k1'), Buffer.alloc(32, 7));
  const configPath = join(dir, 'sidecar.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: { host: '0.0.0.0', port: 8080 },
      admin: { host: '0.0.0.0', port: 9090 },
      upstream: { url: upstream.url },
      trust: { discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] } },
      assertion: { keysDir },
      logging: { level: 'info' },
    }),
  );
  const sidecarLogs: string[] = [];
  const sidecar = side.spawn(process.execPath, [MAIN, 'serve', '--config', configPath], { env: { ...process.env, ...api.env } });
  lines(sidecar, sidecarLogs);
  const admin = `http://${side.address}:9090`;
  const stderr: string[] = [];
  sidecar.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
  await waitFor(async () => (await fetch(`${admin}/readyz`).catch(() => undefined))?.status === 200, 'the sidecar ready', 15000, 100).catch((err: Error) => {
    throw new Error(`${err.message}; stderr: ${stderr.join('')}; logs: ${sidecarLogs.slice(-5).join('\n')}`);
  });

  const clientOut: string[] = [];
  const client = proxy.spawn(process.execPath, ['-e', CLIENT, `http://${side.address}:8080/hello`]);
  lines(client, clientOut);
  await waitFor(() => clientOut.includes('first-ok'), 'a request from the pod IP passing', 10000);
  const passed = upstream.received.at(-1)!;
  expect(passed.headers['x-forwarded-user']).toBe('alice@example.com');
  expect(passed.headers['x-trusted-proxy-assertion']).toBeDefined();

  api.remove('pods', 'traefik', 'traefik-1');
  const eventAt = api.lastEventWrittenAt();
  const result = await waitFor(() => clientOut.find((l) => l.startsWith('{')), 'the first refusal', 10000);
  const { status, refusedAt, lastOkAt, requests } = JSON.parse(result) as { status: number; refusedAt: number; lastOkAt: number; requests: number };
  expect(status).toBe(403);

  // Every later request is refused too, and the log line says why.
  const again = proxy.exec('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '--max-time',
    '5',
    '-H',
    'x-auth-request-email: alice@example.com',
    `http://${side.address}:8080/hello`,
  ]);
  expect(again).toBe('403');
  const parsed = () => sidecarLogs.flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as Record<string, unknown>] : []));
  const refusal = await waitFor(() => parsed().find((l) => l.msg === 'refused' && l.peer === proxy.address), 'the refusal log line');
  expect(refusal).toMatchObject({ reason: 'untrusted_source', stage: 'source' });
  expect(refusal.detail).toBe(`not_in_trusted_set: no match in static (0 entries), ${SOURCE} (1 entry)`);
  const update = parsed().find((l) => l.msg === 'trusted set updated from discovery' && (l.removed as string[] | undefined)?.includes(proxy.address));
  const swappedAt = Date.parse(String(update!.time));

  process.stdout.write(
    `propagation, DELETED event written by the API server -> decision path refuses: ${refusedAt - eventAt} ms ` +
      `(trusted set swapped after ${swappedAt - eventAt} ms by the sidecar's log clock; last request allowed ${lastOkAt - eventAt} ms after the event; ${requests} requests sent)\n`,
  );
  expect(sidecar.exitCode).toBeNull();
});
