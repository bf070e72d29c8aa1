// Connection management between client, sidecar and gateway: each hop's connection headers
// stay on that hop. The client's `Connection: close` is honoured, and the gateway's own
// hop-by-hop response headers (its keep-alive timeout, names its Connection lists) never
// reach the client.
import { connect } from 'node:net';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;

beforeAll(async () => {
  upstream = await startRecordingUpstream((req, res) => {
    if (req.url === '/hop-by-hop') {
      res.writeHead(200, { connection: 'keep-alive, x-gateway-hop', 'keep-alive': 'timeout=5', 'x-gateway-hop': 'internal', 'x-end-to-end': 'kept' });
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  sc = await startSidecar(upstream.url);
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
});

/** Sends raw bytes; resolves with what came back and whether the sidecar ended the connection. */
function exchange(bytes: string, waitMs = 2000): Promise<{ reply: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port: sc.port }, () => socket.write(bytes));
    const finish = (closedByServer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedByServer });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => finish(true));
    socket.once('error', reject);
  });
}

function headerLines(reply: string): string[] {
  return reply
    .split('\r\n\r\n')[0]!
    .split('\r\n')
    .slice(1)
    .map((l) => l.toLowerCase());
}

test("the client's Connection: close is honoured: the sidecar answers with close and ends the connection", async () => {
  const { reply, closedByServer } = await exchange(
    'GET /plain HTTP/1.1\r\nhost: gateway\r\nx-auth-request-email: alice@example.com\r\nconnection: close\r\n\r\n',
  );
  expect(reply).toMatch(/^HTTP\/1\.1 200 /);
  expect(headerLines(reply)).toContain('connection: close');
  expect(closedByServer).toBe(true);
});

test("the gateway's hop-by-hop response headers stay on the gateway's hop", async () => {
  const { reply } = await exchange('GET /hop-by-hop HTTP/1.1\r\nhost: gateway\r\nx-auth-request-email: alice@example.com\r\nconnection: close\r\n\r\n');
  const lines = headerLines(reply);
  expect(lines).toContain('x-end-to-end: kept');
  expect(lines.filter((l) => l.startsWith('keep-alive:') && l.includes('timeout=5'))).toEqual([]);
  expect(lines.filter((l) => l.startsWith('x-gateway-hop'))).toEqual([]);
  expect(lines.filter((l) => l.startsWith('connection:'))).toEqual(['connection: close']);
});

test('without Connection: close, one client connection carries several requests', async () => {
  const one = 'GET /plain HTTP/1.1\r\nhost: gateway\r\nx-auth-request-email: alice@example.com\r\n\r\n';
  const { reply } = await exchange(`${one}${one}${one.replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n')}`);
  expect(reply.match(/HTTP\/1\.1 200 /g)).toHaveLength(3);
});
