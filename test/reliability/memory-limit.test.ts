// The data port's default connection maximum follows the container's memory limit: the real
// sidecar process in a memory cgroup of its own (as a pod's limit puts it), so a flood of
// connections is closed at accept before it can take the process past the limit, where the
// kernel would end it and every connection with it.
import { RawClient, statuses } from '../support/raw-client.js';
import { sample, scrape } from '../support/metrics.js';
import { waitFor } from '../../harness/wait.js';
import { fdCount, serveProcess, type SidecarProcess } from './process.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

const MIB = 1024 * 1024;
// 160 MiB less the 192 MiB reserve is under a quarter of it, so a quarter (40 MiB) is for
// connections, at 24 KiB + maxHeaderBytes (16 KiB) each: 1,024. The descriptor limit
// (20,000 here) would allow 9,872.
const LIMIT = 160 * MIB;
const EXPECTED = 1024;

let upstream: RecordingUpstream;
let sc: SidecarProcess | undefined;
const clients: RawClient[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await sc?.stop();
  await upstream.close();
});

test(`under a ${LIMIT / MIB} MiB memory limit the data port holds ${EXPECTED} connections and closes the next at accept`, async () => {
  sc = await serveProcess({ upstream: { url: upstream.url }, logging: { level: 'info' } }, { memoryLimitBytes: LIMIT });
  const s = sc;
  expect(s.logs().find((l) => l['msg'] === 'listening')).toMatchObject({ maxConnections: EXPECTED });
  const fds0 = fdCount(s.pid);
  for (let i = 0; i < EXPECTED; i++) clients.push(await RawClient.connect(s.port));
  await waitFor(() => fdCount(s.pid) >= fds0 + EXPECTED, 'the sidecar to accept every connection', 20_000);
  const over = await RawClient.connect(s.port);
  await over.closed;
  expect(over.text).toBe('');
  expect(sample(await scrape(s.adminUrl), 'trusted_proxy_connections_dropped_total', { port: 'data', reason: 'max_connections' })).toBe(1);
  // The connections it holds are served.
  const held = clients[EXPECTED - 1]!;
  held.write('GET /x HTTP/1.1\r\nhost: claw.example.com\r\nx-auth-request-email: alice@example.com\r\n\r\n');
  expect(statuses(await held.receive((t) => t.endsWith('\r\n0\r\n\r\n'), 'the answer'))).toEqual([200]);
  expect(upstream.received).toHaveLength(1);
}, 60_000);
