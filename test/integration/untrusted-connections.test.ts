// A flood from an address the trusted set does not hold cannot take the data port's
// connections from the trusted proxy. Real sockets on loopback: the trusted proxy is
// 127.0.0.1, the flooding pod 127.0.0.2 (trust.require: address, the default). Past
// listen.maxUntrustedConnections the flood is closed at accept; the connections it holds
// still get their 403 with the reason; the trusted proxy keeps the rest of
// listen.maxConnections, and past that it is dropped too, counted apart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, statuses } from '../support/raw-client.js';
import { sample, scrape } from '../support/metrics.js';
import { REFUSED_BY_ADDRESS } from '../../src/server/sidecar.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { makeTestCa } from '../../harness/test-ca.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const TRUSTED = '127.0.0.1';
const FLOOD = '127.0.0.2';
const MAX_CONNECTIONS = 6;
const MAX_UNTRUSTED = 2;
const FLOOD_SIZE = 10;
const REQUEST = 'GET /x HTTP/1.1\r\nhost: claw.example.com\r\nx-auth-request-email: alice@example.com\r\n\r\n';

let upstream: RecordingUpstream;
let sc: TestSidecar;
const clients: RawClient[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await sc.stop();
});
afterAll(() => upstream.close());

async function open(localAddress: string): Promise<RawClient> {
  const client = await RawClient.connect(sc.port, '127.0.0.1', { localAddress });
  clients.push(client);
  return client;
}

async function dropped(reason: string): Promise<number> {
  return sample(await scrape(sc.adminUrl), 'trusted_proxy_connections_dropped_total', { port: 'data', reason });
}

/** Sends one request and waits for its complete answer (the sidecar's JSON, or the upstream's chunked text). */
async function ask(client: RawClient): Promise<number> {
  client.write(REQUEST);
  const text = await client
    .receive((t) => /\r\n0\r\n\r\n$|\r\n\r\n\{.*\}$/s.test(t), 'an answer')
    .catch((err: Error) => {
      throw new Error(`${err.message}; received ${JSON.stringify(client.text)}`);
    });
  return statuses(text)[0]!;
}

test('the flood holds at most maxUntrustedConnections; the trusted proxy keeps the rest, and the flood is still answered', async () => {
  sc = await startSidecar(upstream.url, {
    listen: { maxConnections: MAX_CONNECTIONS, maxUntrustedConnections: MAX_UNTRUSTED },
    trust: { allowLoopback: true, cidrs: [`${TRUSTED}/32`] },
  });
  const flood = await Promise.all(Array.from({ length: FLOOD_SIZE }, () => open(FLOOD)));
  // The flood was delivered: every connection was made, and all but the bound were closed by the sidecar.
  await waitFor(() => flood.filter((c) => c.isClosed).length === FLOOD_SIZE - MAX_UNTRUSTED, 'the flood past the bound closed at accept');
  expect(await dropped('untrusted_limit')).toBe(FLOOD_SIZE - MAX_UNTRUSTED);
  const held = flood.filter((c) => !c.isClosed);
  expect(held).toHaveLength(MAX_UNTRUSTED);

  // The trusted proxy gets every connection the flood could not take.
  const before = upstream.received.length;
  const proxy = await Promise.all(Array.from({ length: MAX_CONNECTIONS - MAX_UNTRUSTED }, () => open(TRUSTED)));
  for (const c of proxy) expect(await ask(c)).toBe(200);
  expect(upstream.received.length - before).toBe(proxy.length);
  const atMaximum = await scrape(sc.adminUrl);
  expect(sample(atMaximum, 'trusted_proxy_connections_open', { port: 'data' })).toBe(MAX_CONNECTIONS);
  expect(sample(atMaximum, 'trusted_proxy_connections_max', { port: 'data' })).toBe(MAX_CONNECTIONS);

  // The connections the flood holds are answered with the reason, and nothing of theirs reaches the gateway.
  for (const c of held) {
    expect(await ask(c)).toBe(403);
    expect(c.text).toContain('untrusted_source');
  }
  expect(upstream.received.length - before).toBe(proxy.length);

  // Past maxConnections a trusted connection is dropped too, counted apart.
  await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 0, "the sidecar closed the flood's connections");
  const full = await Promise.all(Array.from({ length: MAX_UNTRUSTED }, () => open(TRUSTED)));
  for (const c of full) expect(await ask(c)).toBe(200);
  const over = await open(TRUSTED);
  await over.closed;
  expect(over.text).toBe('');
  expect(await dropped('max_connections')).toBe(1);
});

test('a closed untrusted connection frees its place, and a reload sets the bound', async () => {
  sc = await startSidecar(
    upstream.url,
    { listen: { maxUntrustedConnections: 1 }, trust: { allowLoopback: true, cidrs: [`${TRUSTED}/32`] } },
    { configFile: true },
  );
  const first = await open(FLOOD);
  const second = await open(FLOOD);
  await second.closed;
  expect(await ask(first)).toBe(403);
  await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 0, 'the sidecar closed the first connection');
  // Its place is free again.
  const third = await open(FLOOD);
  expect(await ask(third)).toBe(403);
  await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 0, 'the sidecar closed the third connection');

  sc.writeConfig({ ...sc.input, listen: { ...sc.input.listen, maxUntrustedConnections: 0 } });
  await waitFor(() => sc.logs.some((l) => l['msg'] === 'config reloaded'), 'the reload');
  const refused = await open(FLOOD);
  await refused.closed;
  expect(refused.text).toBe('');
  expect(await dropped('untrusted_limit')).toBe(2);
  // The trusted proxy is not counted against the bound.
  expect(await ask(await open(TRUSTED))).toBe(200);
});

test('over TLS the bound applies at accept, before the handshake; the trusted proxy still completes its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tps-quota-tls-'));
  try {
    const ca = makeTestCa(dir, ['localhost']);
    sc = await startSidecar(upstream.url, {
      listen: { certFile: ca.certFile, keyFile: ca.keyFile, maxUntrustedConnections: 1 },
      trust: { allowLoopback: true, cidrs: [`${TRUSTED}/32`] },
    });
    const held = await open(FLOOD);
    const over = await open(FLOOD);
    await over.closed;
    expect(over.text).toBe('');
    expect(held.isClosed).toBe(false);
    expect(await dropped('untrusted_limit')).toBe(1);
    const status = await new Promise<number>((done, fail) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: sc.port,
          path: '/x',
          servername: 'localhost',
          ca: readFileSync(ca.caFile),
          localAddress: TRUSTED,
          agent: false,
          headers: { host: 'claw.example.com', 'x-auth-request-email': 'alice@example.com' },
        },
        (res) => {
          res.resume();
          done(res.statusCode!);
        },
      );
      req.on('error', fail);
      req.end();
    });
    expect(status).toBe(200);
    // The held connection's place is given back when it closes, over TLS too.
    held.destroy();
    await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 0, 'the sidecar to close the held connection');
    const again = await open(FLOOD);
    await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 1, 'the sidecar to hold the next one');
    // The first bytes of a TLS record, then a reset mid-handshake: that place is given back too.
    again.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    again.reset();
    await waitFor(() => sc.sidecar.untrusted.count(REFUSED_BY_ADDRESS) === 0, 'the sidecar to close the reset connection');
    expect(await dropped('untrusted_limit')).toBe(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
