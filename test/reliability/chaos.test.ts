// The connection-level classes of the attack corpus (reliability/chaos.ts), against the
// real sidecar process serving inline proxying, WebSockets and forward-auth on one port:
// 15. crash attempts: every path × every stage × reset, FIN, stall, never read;
// 16. exhaustion by an allowed user: stalled uploads, unread downloads and WebSockets from
//     one identity, past the pool's size;
// 17. exhaustion by an unauthenticated client: refused connections that never read and
//     never close, from an untrusted address and from loopback.
// Held means: the process stays up, a normal client (and the admin port) is answered
// throughout, while the attack's connections are open, every connection the sidecar should
// end is ended, and its open descriptors return to their baseline. How long the normal
// client waited is measured and reported, not asserted: on a shared 2-core machine a time
// bound measures the machine (the performance benchmark measures speed, as ratios).
import { createNetwork, type TestNetwork } from '../../harness/netns.js';
import { profile } from './profile.js';
import { ACTS, chaosCases, type Act, type ChaosCase } from './chaos.js';
import { CLASSES } from './corpus.js';
import { recordSection, table } from './report.js';
import { RawClient, statuses } from '../support/raw-client.js';
import { waitFor } from '../../harness/wait.js';
import { fdCount, fdsSettle, metric, request, serveProcess, type SidecarProcess } from './process.js';
import { answerWithLength, startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

const P = profile();
/** How long a case waits for the sidecar to end a connection it should end (its timeouts here are 1–5 s). */
const CLOSE_BOUND_MS = 12_000;
/** A normal client's request unanswered for this long has been starved: a failure, not a slow answer. */
const STARVED_MS = 10_000;
const BOB = { 'x-auth-request-email': 'bob@example.com' };

let net: TestNetwork;
/** An address of the test network: outside the trusted set, and not loopback. */
let untrusted: string;
let gateway: RecordingUpstream;
interface ClassRow {
  tried: number;
  held: number;
  notes: string[];
}
const row = (): ClassRow => ({ tried: 0, held: 0, notes: [] });
const rows: { 15: ClassRow; 16: ClassRow; 17: ClassRow } = { 15: row(), 16: row(), 17: row() };

beforeAll(async () => {
  net = await createNetwork([]);
  untrusted = net.subnet.replace(/\.0\/24$/, '.1');
  gateway = await startRecordingUpstream(answerWithLength, '127.0.0.1', { websockets: 'raw', keepAliveTimeoutMs: 2000, keep: 100 });
});
afterAll(async () => {
  gateway.releaseAll();
  await gateway.close();
  await net.teardown();
  const classRows = Object.entries(rows).map(([n, r]) => [`${n}. ${CLASSES[Number(n)]}`, r.tried, r.held, r.notes.join('; ')]);
  if (Object.values(rows).every((r) => r.tried > 0 && r.held === r.tried)) {
    recordSection(
      'chaos',
      [
        'The real sidecar process, inline, WebSockets and forward-auth on one data port, attacked at the connection level',
        `(\`reliability/chaos.ts\`, \`test/reliability/chaos.test.ts\`). A case holds when the process stays up, a normal`,
        "client and the admin port are answered throughout, while the attack's connections are open (the worst wait is",
        `reported), every connection the sidecar should end is ended (a case waits ${CLOSE_BOUND_MS / 1000} s for it), and its open`,
        'descriptors return to their baseline.',
        '',
        table(['class', 'tried', 'held', 'what'], classRows),
      ].join('\n'),
    );
  }
});

/** A sidecar process serving every path, with short timeouts so stalls end quickly. */
function serveChaos(overrides: Record<string, unknown> = {}): Promise<SidecarProcess> {
  return serveProcess({
    listen: { host: '0.0.0.0', headersTimeoutSeconds: 1, requestTimeoutSeconds: 5, keepAliveTimeoutSeconds: 2, shutdownGraceSeconds: 1 },
    upstream: { url: gateway.url, maxSockets: 16, timeoutSeconds: 5 },
    limits: { clientStallTimeoutSeconds: 1, queueTimeoutSeconds: 1, maxRequestBodyBytes: 1_000_000 },
    forwardAuth: { enabled: true },
    logging: { level: 'info' },
    ...overrides,
  });
}

/**
 * While `during` runs: a normal request and an admin probe every 200 ms, each of which must
 * be answered (one unanswered for STARVED_MS is a failure). `during` calls `witness` once its
 * attack is in place, before it lets go of anything: a normal request and an admin probe
 * answered then are the witness that the normal client is served under the attack, not after.
 */
async function probing<T>(
  sc: SidecarProcess,
  during: (witness: () => Promise<void>) => Promise<T>,
  ok: (status: number) => boolean = (s) => s === 200,
): Promise<{ result: T; worstMs: number; failures: string[] }> {
  const failures: string[] = [];
  let worstMs = 0;
  const probe = async (what: string) => {
    const [data, admin] = await Promise.all([
      request(`${sc.url}/ok`, { headers: BOB, timeoutMs: STARVED_MS }),
      request(`${sc.adminUrl}/healthz`, { timeoutMs: STARVED_MS }),
    ]);
    worstMs = Math.max(worstMs, data.ms, admin.ms);
    if (!ok(data.status)) failures.push(`${what}: data ${data.status} ${data.body}`);
    if (admin.status !== 200) failures.push(`${what}: admin ${admin.status}`);
    if (sc.child.exitCode !== null) failures.push(`${what}: process exited ${sc.child.exitCode}`);
  };
  let running = true;
  let witnessed = false;
  const loop = (async () => {
    for (let i = 0; running && i < 1000; i++) {
      await probe('throughout');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  try {
    const result = await during(async () => {
      witnessed = true;
      await probe('with the attack in place');
    });
    if (!witnessed) failures.push('the attack never called its witness');
    return { result, worstMs, failures };
  } finally {
    running = false;
    await loop;
  }
}

/** `n` clients, one after the other, each sending its bytes and never reading. */
async function neverReading(n: number, connect: () => Promise<RawClient>, bytes: (i: number) => string): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  for (let i = 0; i < n; i++) {
    const client = await connect();
    client.stopReading();
    client.write(bytes(i));
    clients.push(client);
  }
  return clients;
}

/** Brings a case's connection to its stage, applies its act, and says whether the sidecar did what it should. */
async function runCase(sc: SidecarProcess, c: ChaosCase): Promise<{ client: RawClient; ok: Promise<boolean> }> {
  const port = c.path.port === 'admin' ? Number(new URL(sc.adminUrl).port) : sc.port;
  const from = c.path.from === 'untrusted' ? { host: untrusted, localAddress: untrusted } : { host: '127.0.0.1' };
  const client = await RawClient.connect(port, from.host, from);
  const reading = c.act !== 'never-read';
  if (!reading) client.stopReading();
  const head = c.path.head.replaceAll('{ID}', c.id.replace(/\//g, '.'));
  switch (c.stage) {
    case 'before-head':
      break;
    case 'mid-head':
      client.write(head.slice(0, Math.floor(head.length / 2)));
      break;
    case 'mid-body':
      client.write(`${head}Content-Length: 1000\r\n\r\n${'x'.repeat(10)}`);
      break;
    default:
      client.write(`${head}\r\n`);
  }
  if (reading) {
    if (c.stage === 'after-refusal') await client.receive((t) => t.includes('\r\n\r\n'), `${c.id}: the answer`);
    if (c.stage === 'after-101') await client.receive((t) => t.startsWith('HTTP/1.1 101'), `${c.id}: the 101`);
    if (c.stage === 'mid-response') await client.receive((t) => t.length > 65536, `${c.id}: part of the response`);
    if (c.stage === 'after-head' && c.path.port === 'data') await waitFor(() => gateway.held.size > 0, `${c.id}: held upstream`);
  }
  actOn(client, c.act);
  const ok = (async () => {
    if (c.expect === 'kept') return !client.isClosed;
    // A reader sees the sidecar end the connection; a client that never reads cannot, and
    // is accounted for by the descriptor count.
    if (!reading) return true;
    return Promise.race([client.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), CLOSE_BOUND_MS).unref())]);
  })();
  return { client, ok };
}

const kept = (cases: readonly ChaosCase[]) => cases.filter((c) => c.expect === 'kept').length;

function actOn(client: RawClient, act: Act): void {
  if (act === 'rst') client.reset();
  if (act === 'fin') client.finish();
}

describe('15. crash attempts', () => {
  let sc: SidecarProcess;
  let baseline: number;
  beforeAll(async () => {
    sc = await serveChaos();
    expect((await request(`${sc.url}/ok`, { headers: BOB })).status).toBe(200);
    baseline = fdCount(sc.pid);
  });
  afterAll(() => sc.stop());

  const cases = chaosCases();
  test.each(ACTS)(
    'every path and stage, then: %s',
    async (act) => {
      const mine = cases.filter((c) => c.act === act && c.stage !== 'queued');
      const { result, worstMs, failures } = await probing(sc, async (witness) => {
        const started = await Promise.all(mine.map((c) => runCase(sc, c)));
        await witness();
        const verdicts = await Promise.all(started.map((s) => s.ok));
        gateway.releaseAll();
        // While every client still holds on: only the kept WebSockets (two descriptors each) remain.
        const whileHeld = await fdsSettle(sc.pid, baseline + 2 + 2 * kept(mine), 20_000);
        for (const s of started) s.client.destroy();
        return { verdicts, whileHeld };
      });
      const fds = await fdsSettle(sc.pid, baseline + 2, 20_000);
      const failed = mine.filter((_, i) => !result.verdicts[i]).map((c) => c.id);
      const released = result.whileHeld <= baseline + 2 + 2 * kept(mine) && fds <= baseline + 2;
      rows[15].tried += mine.length;
      rows[15].held += failures.length === 0 && released ? mine.length - failed.length : 0;
      rows[15].notes.push(`then ${act}: bob served, worst ${Math.round(worstMs)} ms`);
      expect({ failed, failures, exited: sc.child.exitCode }).toEqual({ failed: [], failures: [], exited: null });
      expect(result.whileHeld).toBeLessThanOrEqual(baseline + 2 + 2 * kept(mine));
      expect(fds).toBeLessThanOrEqual(baseline + 2);
    },
    120_000,
  );

  test('while waiting for a pooled connection, then: reset, FIN, stall, never read', async () => {
    // Four identities hold the whole pool (16 connections, 4 each).
    const holders = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const client = await RawClient.connect(sc.port);
        client.write(`GET /hold/holder-${i} HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: holder${i % 4}@example.com\r\n\r\n`);
        return client;
      }),
    );
    await waitFor(() => gateway.held.size === 16, 'the pool full');
    const queued = cases.filter((c) => c.stage === 'queued');
    // With the pool full of other users' requests, a normal client waits too: it must be
    // answered (at the latest with 503 upstream_busy at the queue deadline), not left hanging.
    const { result, failures } = await probing(
      sc,
      async (witness) => {
        const started = await Promise.all(queued.map((c) => runCase(sc, c)));
        await witness();
        const verdicts = await Promise.all(started.map((s) => s.ok));
        // Only the holders remain: 16 clients and their 16 upstream connections.
        const whileHeld = await fdsSettle(sc.pid, baseline + 2 + 32, 20_000);
        for (const s of started) s.client.destroy();
        return { verdicts, whileHeld };
      },
      (status) => status === 200 || status === 503,
    );
    expect(await metric(sc.adminUrl, 'trusted_proxy_upstream_queued')).toBe(0);
    for (const h of holders) h.destroy();
    gateway.releaseAll();
    const fds = await fdsSettle(sc.pid, baseline + 2, 20_000);
    const failed = queued.filter((_, i) => !result.verdicts[i]).map((c) => c.id);
    rows[15].tried += queued.length;
    rows[15].held += failures.length === 0 && result.whileHeld <= baseline + 34 && fds <= baseline + 2 ? queued.length - failed.length : 0;
    expect({ failed, failures }).toEqual({ failed: [], failures: [] });
    expect(result.whileHeld).toBeLessThanOrEqual(baseline + 34);
    expect(fds).toBeLessThanOrEqual(baseline + 2);
    expect((await request(`${sc.url}/ok`, { headers: BOB })).status).toBe(200);
  }, 60_000);
});

describe('16. exhaustion by an allowed user (default pool and share: 256 connections, a quarter each)', () => {
  let sc: SidecarProcess;
  let baseline: number;
  const N = P.exhaustionConnections;
  beforeAll(async () => {
    sc = await serveChaos({ upstream: { url: gateway.url }, limits: { clientStallTimeoutSeconds: 2 } });
    expect((await request(`${sc.url}/ok`, { headers: BOB })).status).toBe(200);
    baseline = fdCount(sc.pid);
  });
  afterAll(() => sc.stop());

  /** `N` connections from alice, each started by `start`; bob and the admin port probed meanwhile. */
  /**
   * `N` connections from alice that never read, each started by `start`; bob and the admin
   * port probed meanwhile. Once `settle` holds, the sidecar may keep only `keptConnections`
   * (two descriptors each) while the clients still hold on.
   */
  async function flood(what: string, start: (i: number) => string, settle: () => Promise<void>, keptConnections = 0): Promise<void> {
    gateway.peakHeld = 0;
    const {
      result: whileHeld,
      worstMs,
      failures,
    } = await probing(sc, async (witness) => {
      const clients = await neverReading(N, () => RawClient.connect(sc.port), start);
      await witness();
      await settle();
      const fds = await fdsSettle(sc.pid, baseline + 2 + 2 * keptConnections, 30_000);
      for (const c of clients) c.destroy();
      return fds;
    });
    gateway.releaseAll();
    const fds = await fdsSettle(sc.pid, baseline + 2, 30_000);
    const held = failures.length === 0 && whileHeld <= baseline + 2 + 2 * keptConnections && fds <= baseline + 2;
    rows[16].tried++;
    if (held) rows[16].held++;
    rows[16].notes.push(`${what}: bob served, worst ${Math.round(worstMs)} ms`);
    expect({ failures, exited: sc.child.exitCode }).toEqual({ failures: [], exited: null });
    expect(whileHeld).toBeLessThanOrEqual(baseline + 2 + 2 * keptConnections);
    expect(fds).toBeLessThanOrEqual(baseline + 2);
  }

  test(`${N} uploads that stop mid-body: at most a quarter of the pool held, all ended by the stall timeout`, async () => {
    await flood(
      `${N} stalled uploads`,
      (i) => `POST /hold/upload-${i} HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(10)}`,
      async () => {
        await waitFor(() => gateway.held.size === 64, 'a quarter of the pool held', 10_000);
        // The rest were refused at once; the held ones end with 408 after the stall timeout.
        await waitFor(() => gateway.held.size === 0, 'the stalled uploads ended', 10_000);
        expect(await metric(sc.adminUrl, 'trusted_proxy_limit_refusals_total', { reason: 'identity_request_limit' })).toBeGreaterThanOrEqual(N - 64);
      },
    );
    expect(gateway.peakHeld).toBe(64);
  }, 120_000);

  test(`${N} downloads never read: at most a quarter of the pool, every one ended by the stall timeout`, async () => {
    const before = gateway.abandoned.filter((p) => p === '/big').length;
    await flood(
      `${N} unread downloads`,
      () => `GET /big HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\n\r\n`,
      async () => {
        await waitFor(() => gateway.abandoned.filter((p) => p === '/big').length - before >= 64, 'the unread downloads ended', 15_000);
        expect(await metric(sc.adminUrl, 'trusted_proxy_connections_stalled_total')).toBeGreaterThanOrEqual(64);
      },
    );
  }, 120_000);

  test(`${N} WebSockets from one identity: 64 open, the rest refused 429, others still open theirs`, async () => {
    await flood(
      `${N} WebSockets`,
      (i) =>
        `GET /ws-${i} HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      async () => {
        await waitFor(
          async () => (await metric(sc.adminUrl, 'trusted_proxy_limit_refusals_total', { reason: 'identity_websocket_limit' })) >= N - 64,
          'the rest refused',
          10_000,
        );
        expect(gateway.upgraded.size).toBe(64);
        const bob = await RawClient.connect(sc.port);
        bob.write(
          `GET /ws HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: bob@example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
        expect(statuses(await bob.receive((t) => t.includes('\r\n\r\n'), "bob's WebSocket"))).toEqual([101]);
        bob.destroy();
      },
      64,
    );
  }, 120_000);
});

describe('17. exhaustion by an unauthenticated client', () => {
  let sc: SidecarProcess;
  let baseline: number;
  const N = P.refusedConnections;
  beforeAll(async () => {
    sc = await serveChaos();
    baseline = fdCount(sc.pid);
  });
  afterAll(() => sc.stop());

  test.each([
    [
      'refused at the source (untrusted address), never read, never closed',
      true,
      'GET /x HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: mallory@example.com\r\n\r\n',
    ],
    [
      'refused upgrades (no identity), never read, never closed',
      false,
      'GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ],
    ['malformed requests (400), never read, never closed', false, 'GET /x HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n\r\n'],
    [
      'requests with a body, refused (401), never read, never closed',
      false,
      `POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(100)}`,
    ],
  ])(
    `${N} %s: descriptors return to the baseline`,
    async (what, fromUntrusted, bytes) => {
      const {
        result: whileHeld,
        worstMs,
        failures,
      } = await probing(sc, async (witness) => {
        const connect = () => RawClient.connect(sc.port, fromUntrusted ? untrusted : '127.0.0.1', fromUntrusted ? { localAddress: untrusted } : {});
        const clients = await neverReading(N, connect, () => bytes);
        await witness();
        // The sidecar lets go of every one of them while the clients hold on.
        const fds = await fdsSettle(sc.pid, baseline + 2, 20_000);
        for (const c of clients) c.destroy();
        return fds;
      });
      rows[17].tried++;
      if (failures.length === 0 && whileHeld <= baseline + 2) rows[17].held++;
      rows[17].notes.push(`${what.split(',')[0]}: released while the clients held on, bob served, worst ${Math.round(worstMs)} ms`);
      expect({ failures, exited: sc.child.exitCode }).toEqual({ failures: [], exited: null });
      expect(whileHeld).toBeLessThanOrEqual(baseline + 2);
    },
    120_000,
  );
});
