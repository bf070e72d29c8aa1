// Bodies through the sidecar: streamed both ways with backpressure (a gateway that stops
// reading stops the client's upload; a client that stops reading stops the gateway's
// download), never held whole, framed as the client framed them, and a client that goes
// away mid-exchange ends the gateway's side of it too.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };
// Far more than every socket buffer and stream queue on the way can hold (a few MB each).
const TOTAL = 96 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'b');

interface Gateway {
  /** Starts reading the held upload. */
  release?: () => void;
  /** Bytes the gateway has handed to its socket for /big-response. */
  written: number;
  /** Requests that arrived, and those whose exchange ended before the gateway finished it, by path. */
  arrived: string[];
  cut: string[];
}

const gw: Gateway = { written: 0, arrived: [], cut: [] };
let server: http.Server;
let sc: TestSidecar;

function consume(req: IncomingMessage, res: ServerResponse): void {
  const hash = createHash('sha256');
  let count = 0;
  req.on('data', (c: Buffer) => {
    count += c.length;
    hash.update(c);
  });
  req.on('end', () => {
    const framing = { length: req.headers['content-length'] ?? null, chunked: req.headers['transfer-encoding'] ?? null };
    res.end(JSON.stringify({ count, sha: hash.digest('hex'), ...framing }));
  });
  req.resume();
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    gw.arrived.push(req.url!);
    // A request whose connection closes before the gateway answered in full was cut.
    res.once('close', () => {
      if (!res.writableFinished) gw.cut.push(req.url!);
    });
    switch (req.url) {
      case '/hold-body':
        req.pause();
        gw.release = () => consume(req, res);
        return;
      case '/big-response': {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const pump = () => {
          while (gw.written < TOTAL) {
            gw.written += CHUNK.length;
            if (!res.write(CHUNK)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      case '/hold-response':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        return;
      default:
        consume(req, res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sc = await startSidecar(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { upstream: { timeoutSeconds: 30 } });
});
afterAll(async () => {
  await sc.stop();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Writes until `limit` bytes are sent or nothing drains for a second; returns the bytes sent. */
async function writeUntilStalled(req: http.ClientRequest, sent: number, limit: number, hash: ReturnType<typeof createHash>): Promise<number> {
  while (sent < limit) {
    hash.update(CHUNK);
    sent += CHUNK.length;
    if (!req.write(CHUNK)) {
      const drained = await Promise.race([once(req, 'drain').then(() => true), new Promise<boolean>((r) => setTimeout(r, 1000, false))]);
      if (!drained) break;
    }
  }
  return sent;
}

function post(path: string, headers: Record<string, string>): { req: http.ClientRequest; reply: Promise<{ status: number; body: string }> } {
  const req = http.request(`${sc.url}${path}`, { method: 'POST', headers: { ...ALICE, ...headers } });
  const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.once('error', reject);
  });
  return { req, reply };
}

test('an upload stalls while the gateway does not read, then arrives whole once it does', async () => {
  gw.release = undefined;
  const { req, reply } = post('/hold-body', { 'transfer-encoding': 'chunked' });
  const hash = createHash('sha256');
  const stalledAt = await writeUntilStalled(req, 0, TOTAL, hash);
  // The sidecar stopped taking the body: it did not read it whole into memory.
  expect(stalledAt).toBeLessThan(TOTAL / 2);
  await waitFor(() => gw.release !== undefined, 'the request at the gateway');
  gw.release!();
  let sent = stalledAt;
  while (sent < TOTAL) {
    hash.update(CHUNK);
    sent += CHUNK.length;
    if (!req.write(CHUNK)) await once(req, 'drain');
  }
  req.end();
  const { status, body } = await reply;
  expect(status).toBe(200);
  expect(JSON.parse(body)).toEqual({ count: TOTAL, sha: hash.digest('hex'), length: null, chunked: 'chunked' });
}, 60_000);

test('a download stalls while the client does not read, then arrives whole once it does', async () => {
  gw.written = 0;
  const req = http.get(`${sc.url}/big-response`, { headers: ALICE });
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.pause();
  // Wait (at most 30 s) until the gateway's writes stop advancing for a second.
  let last = -1;
  for (let i = 0; i < 30 && gw.written !== last; i++) {
    last = gw.written;
    await new Promise((r) => setTimeout(r, 1000));
  }
  expect(gw.written).toBeLessThan(TOTAL / 2);
  let received = 0;
  res.on('data', (c: Buffer) => (received += c.length));
  res.resume();
  await once(res, 'end');
  expect(received).toBe(TOTAL);
}, 60_000);

test.each([
  ['content-length', { 'content-length': '100000' }, { length: '100000', chunked: null }],
  ['chunked', { 'transfer-encoding': 'chunked' }, { length: null, chunked: 'chunked' }],
] as const)('a %s body reaches the gateway with that framing and every byte', async (_what, framing, seen) => {
  const body = Buffer.alloc(100000, 'c');
  const { req, reply } = post('/echo', framing);
  req.end(body);
  const { status, body: answer } = await reply;
  expect(status).toBe(200);
  expect(JSON.parse(answer)).toEqual({ count: body.length, sha: createHash('sha256').update(body).digest('hex'), ...seen });
});

test('a client that leaves mid-response ends the exchange with the gateway', async () => {
  const req = http.get(`${sc.url}/hold-response`, { headers: ALICE });
  req.on('error', () => undefined);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  await once(res, 'data');
  req.destroy();
  await waitFor(() => gw.cut.includes('/hold-response'), 'the gateway to see its response cut');
});

test('a client that leaves mid-upload ends the exchange with the gateway', async () => {
  // The gateway reads what comes (it would see no end of the connection otherwise) and
  // answers only after the whole body, which never comes.
  const { req, reply } = post('/partial-upload', { 'content-length': String(1024 * 1024) });
  const outcome = reply.then(
    () => 'answered',
    () => 'cut',
  );
  req.write(CHUNK);
  await waitFor(() => gw.arrived.includes('/partial-upload'), 'the request at the gateway');
  req.destroy();
  await waitFor(() => gw.cut.includes('/partial-upload'), 'the gateway to see its request cut');
  expect(await outcome).toBe('cut');
});
