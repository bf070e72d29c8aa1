// The relay of an open WebSocket, from both ends on raw sockets: what a client or a gateway
// can do to it after the 101 (stop reading, half-close, reset) must cost only that
// WebSocket, and must never leave one of its two sockets open without the other.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/** Far above what the kernel's and the sidecar's buffers hold between the two ends. */
const BOUND = 64 * 1024 * 1024;

/** The gateway's end of each upgrade, once it has answered 101. */
let accepted: ((socket: Socket) => void)[] = [];
let gateway: Server;
let sc: TestSidecar;

beforeAll(async () => {
  gateway = createServer((socket) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      accepted.shift()?.(socket);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  const { port } = gateway.address() as { port: number };
  sc = await startSidecar(`http://127.0.0.1:${port}`, { limits: { clientStallTimeoutSeconds: 1 } });
});
afterAll(async () => {
  await sc.stop();
  await new Promise((resolve) => gateway.close(resolve));
});
afterEach(() => {
  accepted = [];
});

/** An upgraded WebSocket through the sidecar: the client's socket (the 101 read) and the gateway's. */
async function open(): Promise<{ client: Socket; upstream: Socket }> {
  const upstream = new Promise<Socket>((resolve) => accepted.push(resolve));
  const client = connect({ host: '127.0.0.1', port: sc.port });
  client.on('error', () => undefined);
  await new Promise((resolve) => client.once('connect', resolve));
  client.write(
    'GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      'X-Auth-Request-Email: alice@example.com\r\n\r\n',
  );
  let head = '';
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      client.off('data', onData);
      client.pause();
      resolve();
    };
    client.on('data', onData);
  });
  expect(head.startsWith('HTTP/1.1 101')).toBe(true);
  return { client, upstream: await upstream };
}

/** Whether writing to `socket` fails (the peer has closed) within `tries` writes, each awaited. */
async function writesFail(socket: Socket, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    const err = await new Promise<Error | null | undefined>((resolve) => socket.write('anyone there?', resolve));
    if (err) return true;
  }
  return false;
}

const closed = (socket: Socket) => (socket.closed ? Promise.resolve() : new Promise<void>((resolve) => socket.once('close', () => resolve())));

test('a client that stops reading holds the gateway back, and the stall timeout ends both sides', async () => {
  const { client, upstream } = await open();
  // The gateway sends as fast as its socket takes; the client reads nothing more.
  let written = 0;
  const send = () => {
    while (written < BOUND && !upstream.destroyed) {
      written += CHUNK.length;
      if (!upstream.write(CHUNK)) return;
    }
  };
  upstream.on('drain', send);
  send();
  // The sidecar stops reading the gateway while the client's side is full, so the gateway's
  // writes wait; the stalled client is closed after the stall timeout, and the gateway's
  // side with it (a WebSocket is never left half open).
  await closed(upstream);
  expect(written).toBeGreaterThan(CHUNK.length);
  expect(written).toBeLessThan(BOUND);
  // What the client had not read is still there to read before its side ends.
  client.resume();
  await closed(client);
  await waitFor(() => sc.sidecar.websockets.size === 0, 'the sidecar to forget the WebSocket');
});

test('a half-closed WebSocket: the end is passed on, and both sides go after the linger though the gateway never ends its own', async () => {
  const { client, upstream } = await open();
  // This gateway never ends its own side.
  upstream.allowHalfOpen = true;
  let received = '';
  upstream.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const ended = new Promise<void>((resolve) => upstream.once('end', () => resolve()));
  client.resume();
  client.end('last words');
  await ended;
  expect(received).toBe('last words');
  // The gateway keeps its side open and says nothing: the sidecar closes the client's side,
  await closed(client);
  await waitFor(() => sc.sidecar.websockets.size === 0, 'the sidecar to forget the WebSocket');
  // and its own towards the gateway, which the gateway's writes now find reset.
  expect(await writesFail(upstream)).toBe(true);
});

test.each([
  ['the gateway resets', (ends: { client: Socket; upstream: Socket }) => ends.upstream.resetAndDestroy(), 'client'],
  ['the client resets', (ends: { client: Socket; upstream: Socket }) => ends.client.resetAndDestroy(), 'upstream'],
] as const)('%s: the other side is closed at once', async (_, reset, other) => {
  const ends = await open();
  ends.client.resume();
  reset(ends);
  await closed(ends[other]);
  await waitFor(() => sc.sidecar.websockets.size === 0, 'the sidecar to forget the WebSocket');
});
