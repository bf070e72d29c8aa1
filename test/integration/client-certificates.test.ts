// Trust by certificate, over real TLS: the sidecar asks for a client certificate, checks it
// against its client CA and trust.clientCertificates, and, with require: both, wants the
// address too. Real TLS clients (Node's, and curl) present real certificates from openssl.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { RawClient, rawRequest, statusOf } from '../support/raw-client.js';
import { makeClientCert, makeTestCa } from '../../harness/test-ca.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const execFileAsync = promisify(execFile);
const TRAEFIK = 'spiffe://cluster.local/ns/traefik/sa/traefik';
const ALICE = { 'x-auth-request-email': 'alice@example.com' };

let dir: string;
let rogueDir: string;
let upstream: RecordingUpstream;
let ca: ReturnType<typeof makeTestCa>;
let certs: Record<'traefik' | 'other' | 'rogue', { certFile: string; keyFile: string }>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tps-mtls-'));
  rogueDir = mkdtempSync(join(tmpdir(), 'tps-mtls-rogue-'));
  ca = makeTestCa(dir, ['localhost']);
  makeTestCa(rogueDir, ['localhost']);
  certs = {
    traefik: makeClientCert(dir, 'traefik', '/CN=traefik/O=ingress', [`URI:${TRAEFIK}`, 'DNS:traefik.traefik.svc']),
    other: makeClientCert(dir, 'other', '/CN=attacker', ['URI:spiffe://cluster.local/ns/default/sa/attacker']),
    // The right name, from a CA the sidecar does not trust.
    rogue: makeClientCert(rogueDir, 'rogue', '/CN=traefik/O=ingress', [`URI:${TRAEFIK}`]),
  };
  upstream = await startRecordingUpstream();
});
afterAll(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(rogueDir, { recursive: true, force: true });
});

function get(sc: TestSidecar, cert?: { certFile: string; keyFile: string }, localAddress = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: sc.port,
        path: '/x',
        servername: 'localhost',
        ca: readFileSync(ca.caFile),
        localAddress,
        headers: { host: 'claw.example.com', ...ALICE },
        agent: false,
        ...(cert ? { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : {}),
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => done({ status: res.statusCode!, body }));
      },
    );
    req.on('error', fail);
    req.end();
  });
}

const tlsListen = () => ({ certFile: ca.certFile, keyFile: ca.keyFile, clientCAFile: ca.caFile });

// Under require: certificate any address may connect (the bound on peers refused by
// address does not apply), so the handshake needs a deadline of its own.
test('a client that connects and never starts the handshake is closed after listen.headersTimeoutSeconds, not 120 s', async () => {
  const sc = await startSidecar(upstream.url, {
    listen: { ...tlsListen(), headersTimeoutSeconds: 1 },
    trust: { allowLoopback: false, require: 'certificate', clientCertificates: { spiffeIds: [TRAEFIK] } },
  });
  try {
    const silent = await RawClient.connect(sc.port);
    const partial = await RawClient.connect(sc.port);
    // The first bytes of a TLS record (a handshake, TLS 1.0 framing, 512 bytes to come).
    partial.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    await waitFor(() => silent.isClosed && partial.isClosed, 'the sidecar to close both', 5000);
    expect(silent.text + partial.text).toBe('');
    // A real client still completes its handshake and is served.
    expect(await get(sc, certs.traefik)).toMatchObject({ status: 200 });
  } finally {
    await sc.stop();
  }
});

describe('require: certificate', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await startSidecar(
      upstream.url,
      { listen: tlsListen(), trust: { allowLoopback: false, require: 'certificate', clientCertificates: { spiffeIds: [TRAEFIK] } } },
      { configFile: true },
    );
  });
  afterAll(() => sc.stop());

  test("the proxy's certificate is trusted whatever its address; the log says by what", async () => {
    const before = upstream.received.length;
    expect(await get(sc, certs.traefik)).toMatchObject({ status: 200 });
    expect(upstream.received).toHaveLength(before + 1);
    expect(upstream.received.at(-1)!.headers['x-forwarded-user']).toBe('alice@example.com');
    expect(sc.logs.find((l) => l['msg'] === 'allowed')).toMatchObject({ trustedBy: [`certificate spiffe:${TRAEFIK}`] });
  });

  test.each([
    ['no certificate', undefined, 'certificate_missing'],
    ["another workload's certificate from the same CA", 'other', 'certificate_not_allowed'],
    ['the right names from a CA the sidecar does not trust', 'rogue', 'certificate_unverified'],
  ] as const)('%s: 403, and nothing reaches the gateway', async (_name, cert, detail) => {
    const before = upstream.received.length;
    const res = await get(sc, cert ? certs[cert] : undefined);
    expect(res).toEqual({ status: 403, body: '{"error":"untrusted_source"}' });
    expect(upstream.received).toHaveLength(before);
    await waitFor(() => sc.logs.some((l) => l['msg'] === 'refused' && l['detail'] === detail), `a refusal logged with ${detail}`, 2000, 10);
  });

  test("curl with the proxy's certificate passes, without it is refused", async () => {
    // Not execFileSync: the sidecar under test runs in this process's event loop.
    const curl = async (...args: string[]) =>
      (
        await execFileAsync(
          'curl',
          [
            '-s',
            '--max-time',
            '10',
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            '--cacert',
            ca.caFile,
            '--resolve',
            `localhost:${sc.port}:127.0.0.1`,
            '-H',
            'x-auth-request-email: alice@example.com',
            ...args,
            `https://localhost:${sc.port}/x`,
          ],
          { encoding: 'utf8' },
        )
      ).stdout;
    expect(await curl('--cert', certs.traefik.certFile, '--key', certs.traefik.keyFile)).toBe('200');
    expect(await curl()).toBe('403');
  });

  test('an open WebSocket is closed (1008) once a reload stops trusting the certificate it came in by', async () => {
    // ws passes TLS options on to tls.connect, servername among them (its types omit it).
    const ws = new WebSocket(`wss://127.0.0.1:${sc.port}/ws`, {
      ...{ servername: 'localhost' },
      ca: readFileSync(ca.caFile),
      cert: readFileSync(certs.traefik.certFile),
      key: readFileSync(certs.traefik.keyFile),
      headers: { ...ALICE, host: 'claw.example.com' },
    });
    await new Promise<void>((done, fail) => {
      ws.once('open', () => done());
      ws.once('error', fail);
    });
    const closed = new Promise<number>((done) => ws.once('close', (code) => done(code)));
    sc.writeConfig({ ...sc.input, trust: { ...sc.input.trust, clientCertificates: { spiffeIds: ['spiffe://cluster.local/ns/other/sa/proxy'] } } });
    expect(await closed).toBe(1008);
  });
});

test('require: both: the certificate from an address not trusted is refused, from the trusted one passes', async () => {
  const sc = await startSidecar(upstream.url, {
    listen: tlsListen(),
    trust: { allowLoopback: true, cidrs: ['127.0.0.2'], require: 'both', clientCertificates: { subjects: ['CN=traefik,O=ingress'] } },
  });
  try {
    expect(await get(sc, certs.traefik, '127.0.0.2')).toMatchObject({ status: 200 });
    expect(await get(sc, certs.traefik, '127.0.0.1')).toMatchObject({ status: 403 });
    expect(await get(sc, undefined, '127.0.0.2')).toMatchObject({ status: 403 });
  } finally {
    await sc.stop();
  }
});

// Behind a service mesh every peer is the mesh proxy on loopback (Istio's sidecar connects
// from 127.0.0.6). No mesh proxy runs here (Envoy cannot be built on these machines), so
// a client from 127.0.0.6 writes x-forwarded-client-cert as Envoy's APPEND_FORWARD does:
// whatever the client sent, then the element for the certificate Envoy verified.
describe('require: both, from xfcc (a mesh proxy reports the client certificate)', () => {
  let sc: TestSidecar;
  beforeAll(async () => {
    sc = await startSidecar(upstream.url, {
      trust: { allowLoopback: true, cidrs: ['127.0.0.6'], require: 'both', clientCertificates: { from: 'xfcc', spiffeIds: [TRAEFIK] } },
    });
  });
  afterAll(() => sc.stop());

  const send = (from: string, ...xfcc: string[]) =>
    rawRequest(
      sc.port,
      [
        `GET /x HTTP/1.1`,
        'Host: claw.example.com',
        'X-Auth-Request-Email: alice@example.com',
        ...xfcc.map((v) => `X-Forwarded-Client-Cert: ${v}`),
        'Connection: close',
        '',
        '',
      ].join('\r\n'),
      '127.0.0.1',
      3000,
      from,
    );
  const element = (uri: string) => `By=spiffe://cluster.local/ns/claw/sa/claw;Hash=0f;Subject="";URI=${uri}`;

  test('honest: the mesh proxy reports the trusted workload; the header itself never reaches the gateway', async () => {
    const before = upstream.received.length;
    expect(statusOf(await send('127.0.0.6', element(TRAEFIK)))).toBe(200);
    expect(upstream.received).toHaveLength(before + 1);
    expect(upstream.valuesOf(upstream.received.at(-1)!, 'x-forwarded-client-cert')).toEqual([]);
  });

  test.each([
    [
      "a client's forged element before the one the proxy appended",
      '127.0.0.6',
      [`URI=${TRAEFIK},${element('spiffe://cluster.local/ns/default/sa/attacker')}`],
    ],
    ['an honest-looking header from another container of the pod', '127.0.0.1', [element(TRAEFIK)]],
    ['two header lines', '127.0.0.6', [element(TRAEFIK), element(TRAEFIK)]],
    ['no header: the connection was not mutual TLS', '127.0.0.6', []],
    ['a header the parser cannot read', '127.0.0.6', [`URI=${TRAEFIK};Subject="CN=x`]],
    // Read as an escape, the backslash took the proxy's comma and merged the two elements.
    [
      "a client's element ending in a backslash before the proxy's comma",
      '127.0.0.6',
      [`URI=${TRAEFIK};By=\\,${element('spiffe://cluster.local/ns/default/sa/attacker')}`],
    ],
  ])('forged: %s is refused, and nothing reaches the gateway', async (_name, from, xfcc) => {
    const before = upstream.received.length;
    expect(statusOf(await send(from, ...xfcc))).toBe(403);
    expect(upstream.received).toHaveLength(before);
  });
});
