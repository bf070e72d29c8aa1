// The WebSocket tracker on real loopback sockets whose far ends never answer a close frame,
// so the sidecar's side lingers: a WebSocket being closed is closed once, whatever comes
// during that linger (another reload, shutdown), in the frames its peers get and in the metric.
import net, { type Socket } from 'node:net';
import { createMetrics } from '../../src/metrics/metrics.js';
import { closeFrame, CLOSE_GOING_AWAY, CLOSE_POLICY, WebSocketTracker } from '../../src/proxy/websockets.js';
import { sample } from '../support/metrics.js';

let server: net.Server;
const accepted: Socket[] = [];
const made: Socket[] = [];

beforeAll(async () => {
  // Half-open allowed: the far end never answers the sidecar's FIN with its own.
  server = net.createServer({ allowHalfOpen: true }, (socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterEach(() => {
  for (const socket of [...accepted, ...made]) socket.destroy();
  accepted.length = 0;
  made.length = 0;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A connected pair: the sidecar's end and the far end, which keeps every byte it gets and never writes or ends. */
async function pair(): Promise<{ near: Socket; far: () => Promise<{ bytes: Buffer; ended: boolean }> }> {
  const arrived = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const near = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  made.push(near);
  await new Promise((resolve) => near.once('connect', resolve));
  const far = await arrived;
  const chunks: Buffer[] = [];
  let ended = false;
  far.on('data', (c: Buffer) => chunks.push(c));
  const end = new Promise<void>((resolve) => far.once('end', () => ((ended = true), resolve())));
  return { near, far: async () => (await end, { bytes: Buffer.concat(chunks), ended }) };
}

async function metricsText(metrics: ReturnType<typeof createMetrics>): Promise<string> {
  return metrics.registry.metrics();
}

test('a revoked WebSocket is closed once: a second reload and shutdown during its linger neither count it nor send again', async () => {
  const metrics = createMetrics('test');
  const tracker = new WebSocketTracker(metrics, 10);
  const client = await pair();
  const upstream = await pair();
  expect(tracker.hold(client.near, 'alice@example.com')).toBe(true);
  const identity = { user: 'alice@example.com', userRaw: 'alice@example.com', email: 'alice@example.com', groups: [] };
  tracker.add(client.near, upstream.near, identity, { peer: '127.0.0.1', certificate: undefined }, 3600);

  expect(tracker.revoke(() => false)).toBe(1);
  expect(tracker.revoke(() => false)).toBe(0);
  tracker.closeAll(CLOSE_GOING_AWAY, 'shutting down');

  const text = await metricsText(metrics);
  expect(sample(text, 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'policy' })).toBe(1);
  expect(sample(text, 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'shutdown' })).toBe(0);
  // Each peer got one close frame, the policy one, then the end of the stream.
  const toClient = await client.far();
  expect(toClient).toEqual({ bytes: closeFrame(CLOSE_POLICY, 'access revoked', false), ended: true });
  const toGateway = await upstream.far();
  expect(toGateway.ended).toBe(true);
  // Masked towards the gateway: header, mask, then the code and reason (2 + 14 bytes).
  expect(toGateway.bytes.length).toBe(2 + 4 + 16);
  expect(toGateway.bytes[0]).toBe(0x88);
  // Still open until the client's socket closes: the count is the WebSocket's, not the frame's.
  expect(tracker.size).toBe(1);
  expect(sample(await metricsText(metrics), 'trusted_proxy_websockets_open')).toBe(1);
});

test('shutdown after the lifetime bound closed a WebSocket counts it once, as the lifetime', async () => {
  const metrics = createMetrics('test');
  const tracker = new WebSocketTracker(metrics, 10);
  const client = await pair();
  const upstream = await pair();
  tracker.hold(client.near, 'bob@example.com');
  const identity = { user: 'bob@example.com', userRaw: 'bob@example.com', email: undefined, groups: [] };
  // A lifetime of 1 ms: the timer fires on its own.
  tracker.add(client.near, upstream.near, identity, { peer: '127.0.0.1', certificate: undefined }, 0.001);
  const toClient = await client.far();
  expect(toClient.bytes).toEqual(closeFrame(CLOSE_POLICY, 'session lifetime reached', false));
  tracker.closeAll(CLOSE_GOING_AWAY, 'shutting down');
  const text = await metricsText(metrics);
  expect(sample(text, 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'lifetime' })).toBe(1);
  expect(sample(text, 'trusted_proxy_websockets_closed_by_sidecar_total', { reason: 'shutdown' })).toBe(0);
});
