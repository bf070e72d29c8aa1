// The admin port under a flood from other pods. It answers the kubelet's probes for both
// containers (the gateway's through /gateway/*) and Prometheus: one peer address holds at
// most ADMIN_CONNECTIONS_PER_ADDRESS connections, any address ADMIN_SHARED_CONNECTIONS of
// them together, the rest are a reserve for addresses holding few, the port holds
// ADMIN_MAX_CONNECTIONS, and
// requests that hammer a gateway probe or /metrics share the one in flight. Real sockets on
// loopback, each flooding pod an address of 127.0.0.0/8 of its own.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gauge } from '../../src/metrics/prom-client.js';
import { ADMIN_CONNECTIONS_PER_ADDRESS, ADMIN_MAX_CONNECTIONS, ADMIN_RESERVE_HOLDING, ADMIN_SHARED_CONNECTIONS } from '../../src/server/admin.js';
import { sample } from '../support/metrics.js';
import { answeredWhole, RawClient, statuses } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

let gateway: RecordingUpstream;
let sc: TestSidecar;
let adminPort: number;
/** Gateway health answers held back until the test lets them go. */
const heldProbes: ServerResponse[] = [];
let holdProbes = false;
const clients: RawClient[] = [];

beforeAll(async () => {
  gateway = await startRecordingUpstream((req, res) => {
    if (req.url === '/healthz' && holdProbes) heldProbes.push(res);
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
// A sidecar each: one test's connections never count against the next one's.
beforeEach(async () => {
  sc = await startSidecar(gateway.url);
  adminPort = Number(new URL(sc.adminUrl).port);
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await sc.stop();
});
afterAll(() => gateway.close());

async function open(localAddress: string): Promise<RawClient> {
  const client = await RawClient.connect(adminPort, '127.0.0.1', { localAddress });
  clients.push(client);
  return client;
}

/** From the registry itself: a scrape would need an admin connection, and the port may be full. */
async function dropped(reason: string): Promise<number> {
  return sample(await sc.sidecar.runtime.metrics.registry.metrics(), 'trusted_proxy_connections_dropped_total', { port: 'admin', reason });
}

/** Sends GET `path` and waits for the whole answer. */
async function get(client: RawClient, path: string): Promise<number> {
  client.write(`GET ${path} HTTP/1.1\r\nhost: admin\r\n\r\n`);
  return statuses(await client.receive(answeredWhole, `the answer to ${path}`))[0]!;
}

test("one address holds its share; the kubelet's probes from another are answered, and so are the flood's held connections", async () => {
  const flood = await Promise.all(Array.from({ length: ADMIN_CONNECTIONS_PER_ADDRESS + 4 }, () => open('127.0.0.2')));
  await waitFor(() => flood.filter((c) => c.isClosed).length === 4, 'the connections past the share closed at accept');
  expect(await dropped('address_limit')).toBe(4);
  const kubelet = await open('127.0.0.1');
  expect(await get(kubelet, '/healthz')).toBe(200);
  expect(await get(kubelet, '/gateway/healthz')).toBe(200);
  const held = flood.filter((c) => !c.isClosed);
  expect(held).toHaveLength(ADMIN_CONNECTIONS_PER_ADDRESS);
  for (const c of held) expect(await get(c, '/healthz')).toBe(200);
  // The flood's share and the kubelet's connection, and nothing the port closed at accept.
  const text = await sc.sidecar.runtime.metrics.registry.metrics();
  expect(sample(text, 'trusted_proxy_connections_open', { port: 'admin' })).toBe(ADMIN_CONNECTIONS_PER_ADDRESS + 1);
  expect(sample(text, 'trusted_proxy_connections_max', { port: 'admin' })).toBe(ADMIN_MAX_CONNECTIONS);
});

/** `pods` addresses, each opening `each` connections at once. */
async function floodFrom(pods: number, each: number, prefix: string): Promise<RawClient[]> {
  const flood: RawClient[] = [];
  for (let pod = 0; pod < pods; pod++) flood.push(...(await Promise.all(Array.from({ length: each }, () => open(`${prefix}.${pod + 1}`)))));
  return flood;
}

test("the shared connections full from eight addresses, the kubelet's probes still find room in the reserve", async () => {
  const pods = ADMIN_SHARED_CONNECTIONS / ADMIN_CONNECTIONS_PER_ADDRESS;
  const flood = await floodFrom(pods, ADMIN_CONNECTIONS_PER_ADDRESS, '127.0.1');
  // A ninth flooding address gets the reserve's share of an address that holds few, no more.
  const ninth = await floodFrom(1, ADMIN_CONNECTIONS_PER_ADDRESS, '127.0.4');
  await waitFor(
    () => ninth.filter((c) => c.isClosed).length === ADMIN_CONNECTIONS_PER_ADDRESS - ADMIN_RESERVE_HOLDING - 1,
    "the ninth address held to the reserve's share",
  );
  expect(flood.filter((c) => c.isClosed)).toHaveLength(0);
  // The kubelet, from the node's address, probes both containers at once.
  const probes = await Promise.all(['/healthz', '/readyz', '/gateway/healthz', '/gateway/readyz'].map(async (path) => get(await open('127.0.3.1'), path)));
  expect(probes).toEqual([200, 200, 200, 200]);
});

test(`never more than ${ADMIN_MAX_CONNECTIONS} connections, from however many addresses: a bound on memory`, async () => {
  const pods = 24;
  const flood = await floodFrom(pods, ADMIN_CONNECTIONS_PER_ADDRESS, '127.0.1');
  const wanted = pods * ADMIN_CONNECTIONS_PER_ADDRESS;
  await waitFor(() => flood.filter((c) => c.isClosed).length === wanted - ADMIN_MAX_CONNECTIONS, 'the connections past the maximum closed at accept');
  expect(await dropped('max_connections')).toBe(wanted - ADMIN_MAX_CONNECTIONS);
});

test('requests hammering a gateway probe share one probe in flight', async () => {
  holdProbes = true;
  const before = gateway.received.filter((r) => r.url === '/healthz').length;
  const callers = await Promise.all(Array.from({ length: 12 }, (_, i) => open(`127.0.2.${i + 1}`)));
  const answers = callers.map((c) => get(c, '/gateway/healthz'));
  // Every request was on the wire before the first probe reached the gateway (one read each).
  await waitFor(() => heldProbes.length > 0, 'the first probe at the gateway');
  holdProbes = false;
  for (const res of heldProbes.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  expect(await Promise.all(answers)).toEqual(callers.map(() => 200));
  expect(gateway.received.filter((r) => r.url === '/healthz').length - before).toBe(1);
});

test('scrapes hammering /metrics share one collection in flight', async () => {
  // A gauge of the sidecar's own registry whose collection waits until the test lets it go.
  let collections = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  new Gauge({
    name: 'test_held_collection',
    help: 'Held by the test.',
    registers: [sc.sidecar.runtime.metrics.registry],
    async collect() {
      collections++;
      await gate;
    },
  });
  let scrapes = 0;
  const started = ({ request }: { request: IncomingMessage }) => void (request.url === '/metrics' && scrapes++);
  subscribe('http.server.request.start', started as (message: unknown) => void);
  try {
    const callers = await Promise.all(Array.from({ length: 12 }, (_, i) => open(`127.0.2.${i + 1}`)));
    const answers = callers.map((c) => get(c, '/metrics'));
    await waitFor(() => scrapes === callers.length, 'every scrape received');
    release();
    expect(await Promise.all(answers)).toEqual(callers.map(() => 200));
    expect(collections).toBe(1);
  } finally {
    unsubscribe('http.server.request.start', started as (message: unknown) => void);
    release();
  }
});
