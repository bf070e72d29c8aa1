// Connection-level defects an attacker found on loopback, each fixed and held here: a
// refused upgrade followed by a reset, refused sockets kept half-open, forward-auth answers
// re-encoding a UTF-8 user, a pipelined upgrade overtaking the response before it, and an
// Upgrade header without `Connection: upgrade`.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { RawClient, statuses } from '../support/raw-client.js';
import { waitFor } from '../../harness/wait.js';

const REASONS: Record<number, string> = { 400: 'bad_request', 408: 'request_timeout', 401: 'identity_missing' };

const ALICE = 'X-Auth-Request-Email: alice@example.com\r\n';
const WS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
/** `josé@example.com` as the UTF-8 bytes a proxy sends, one character per byte. */
const JOSE = Buffer.from('josé@example.com', 'utf8').toString('latin1');

let upstream: RecordingUpstream;
let open: TestSidecar;
let closed: TestSidecar;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  upstream = await startRecordingUpstream((req, res) => {
    // A slow answer, so that a request pipelined behind it is parsed while it is pending.
    if (req.url === '/slow') setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow done'), 200);
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  open = await startSidecar(upstream.url, { forwardAuth: { enabled: true }, listen: { headersTimeoutSeconds: 1 } });
  // Trusts nothing: every request is refused at the source.
  closed = await startSidecar(upstream.url, { trust: { allowLoopback: false } });
});
afterAll(async () => {
  await open.stop();
  await closed.stop();
  await upstream.close();
  process.off('uncaughtException', onUncaught);
});
afterEach(() => expect(uncaught).toEqual([]));

async function served(sc: TestSidecar): Promise<number> {
  return (await fetch(`${sc.url}/still-serving`, { headers: { 'x-auth-request-email': 'alice@example.com' } })).status;
}

describe('a refused upgrade, then a reset, ends only that connection', () => {
  test.each([
    ['missing identity (401)', () => open, `GET /ws HTTP/1.1\r\nHost: gw\r\n${WS}\r\n`, 401],
    ['untrusted source (403)', () => closed, `GET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}\r\n`, 403],
    ['a protocol other than WebSocket (400)', () => open, `GET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n`, 400],
    [
      'the forward-auth answer to an upgrade (200)',
      () => open,
      `GET /forward-auth HTTP/1.1\r\nHost: gw\r\n${ALICE}X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /ws\r\n${WS}\r\n`,
      200,
    ],
  ])('%s', async (_what, sidecar, bytes, status) => {
    const sc = sidecar();
    // Half-open allowed: the client keeps its side after the answer, so its reset reaches a
    // socket the sidecar still holds, as a hostile client's would.
    const client = await RawClient.connect(sc.port, '127.0.0.1', { allowHalfOpen: true });
    client.write(bytes);
    const reply = await client.receive((t) => t.includes('\r\n\r\n{'), 'the answer');
    expect(statuses(reply)).toEqual([status]);
    client.reset();
    await client.closed;
    // The reset reaches the sidecar's socket while it lingers; the next request proves it is alive.
    expect(await served(open)).toBe(200);
  });
});

describe('after a refusal the sidecar releases the socket, though the client never closes or reads', () => {
  // A sidecar of its own, so that the only connections it counts are each test's one client.
  let quiet: TestSidecar;
  beforeAll(async () => {
    quiet = await startSidecar(upstream.url, { listen: { headersTimeoutSeconds: 1 } });
  });
  afterAll(() => quiet.stop());

  test.each([
    ['a malformed request (400)', `GET / HTTP/1.1\r\nHost: gw\r\nBad Header\r\n\r\n`, 400],
    ['a header block never finished (408)', `GET / HTTP/1.1\r\nHost: gw\r\nX-Slow: `, 408],
    ['a refused upgrade (401)', `GET /ws HTTP/1.1\r\nHost: gw\r\n${WS}\r\n`, 401],
  ])('%s', async (_what, bytes, status) => {
    const client = await RawClient.connect(quiet.port);
    await waitFor(() => quiet.sidecar.connections.size === 1, 'the sidecar to accept');
    // Never reads: the answer and the sidecar's FIN stay unread, so the client never closes.
    client.stopReading();
    client.write(bytes);
    await waitFor(async () => (await quiet.sidecar.runtime.metrics.registry.metrics()).includes(`reason="${REASONS[status]}"`), 'the refusal');
    // Bounded by the linger (1 s) after the answer, not by the client.
    await waitFor(() => quiet.sidecar.connections.size === 0, 'the sidecar to release the socket', 5000);
    expect(client.isClosed).toBe(false);
    client.resumeReading();
    await client.closed;
    expect(statuses(client.text)).toEqual([status]);
    client.destroy();
  });
});

describe('forward-auth answers carry the identity byte for byte', () => {
  const request = (extra: string) =>
    `GET /forward-auth HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: ${JOSE}\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /app\r\n${extra}\r\n`;

  test.each([
    ['a sub-request', 'Connection: close\r\n'],
    ['a sub-request that carries an Upgrade', WS],
  ])('%s', async (_what, extra) => {
    const client = await RawClient.connect(open.port);
    client.write(request(extra));
    await client.closed;
    const head = client.bytes.subarray(0, client.bytes.indexOf('\r\n\r\n'));
    const line = head
      .toString('latin1')
      .split('\r\n')
      .find((l) => l.toLowerCase().startsWith('x-forwarded-user:'));
    // The exact bytes the proxy sent, not a second UTF-8 encoding of them.
    expect(Buffer.from(line!.slice('x-forwarded-user: '.length), 'latin1')).toEqual(Buffer.from('josé@example.com', 'utf8'));
  });
});

test("a gateway's refusal of an upgrade is relayed byte for byte", async () => {
  const gateway = http.createServer((_req, res) => res.end());
  gateway.on('upgrade', (_req, socket: Socket) => {
    socket.end(
      Buffer.concat([Buffer.from('HTTP/1.1 403 Forbidden\r\nx-reason: '), Buffer.from('refusé', 'utf8'), Buffer.from('\r\ncontent-length: 2\r\n\r\nno')]),
    );
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  const sc = await startSidecar(`http://127.0.0.1:${(gateway.address() as AddressInfo).port}`);
  try {
    const client = await RawClient.connect(sc.port);
    client.write(`GET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}\r\n`);
    await client.closed;
    expect(statuses(client.text)).toEqual([403]);
    expect(client.bytes.includes(Buffer.from('x-reason: refusé\r\n', 'utf8'))).toBe(true);
  } finally {
    await sc.stop();
    gateway.closeAllConnections();
    await new Promise((resolve) => gateway.close(resolve));
  }
});

describe('a pipelined upgrade waits for the responses before it', () => {
  test('GET /slow then an allowed upgrade: the 200 first, then the 101, then a working WebSocket', async () => {
    const client = await RawClient.connect(open.port);
    client.write(`GET /slow HTTP/1.1\r\nHost: gw\r\n${ALICE}\r\nGET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}\r\n`);
    await client.receive((t) => t.includes('101 Switching Protocols'), 'the 101');
    expect(statuses(client.text)).toEqual([200, 101]);
    expect(client.text.indexOf('slow done')).toBeLessThan(client.text.indexOf('101 Switching Protocols'));
    // A masked text frame "hi"; the upstream echoes it unmasked.
    const mask = [1, 2, 3, 4];
    client.write(Buffer.from([0x81, 0x82, ...mask, 'h'.charCodeAt(0) ^ 1, 'i'.charCodeAt(0) ^ 2]));
    await client.receive((t) => t.endsWith('\x81\x02hi'), 'the echo');
    client.destroy();
  });

  test('GET /slow then a refused upgrade: the 200 is not lost or overtaken', async () => {
    const client = await RawClient.connect(open.port);
    client.write(`GET /slow HTTP/1.1\r\nHost: gw\r\n${ALICE}\r\nGET /ws HTTP/1.1\r\nHost: gw\r\n${WS}\r\n`);
    await client.closed;
    expect(statuses(client.text)).toEqual([200, 401]);
    expect(client.text).toContain('slow done');
  });
});

test('Upgrade: websocket without Connection: upgrade is a plain request, forwarded without the Upgrade', async () => {
  const client = await RawClient.connect(open.port);
  client.write(`GET /plain-upgrade HTTP/1.1\r\nHost: gw\r\n${ALICE}Upgrade: websocket\r\nConnection: close\r\n\r\n`);
  await client.closed;
  expect(statuses(client.text)).toEqual([200]);
  const got = upstream.received.find((r) => r.url === '/plain-upgrade')!;
  expect(upstream.valuesOf(got, 'upgrade')).toEqual([]);
});
