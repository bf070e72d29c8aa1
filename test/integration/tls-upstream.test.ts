// A gateway served over TLS (upstream.url https://…), through the shipped command: requests
// and WebSockets reach it over TLS, its certificate checked against the CAs Node is given
// (NODE_EXTRA_CA_CERTS, as a pod mounts them). A gateway whose certificate no trusted CA
// signed gets nothing: the sidecar answers 502 and the gateway's handler never runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveProcess, type SidecarProcess } from '../reliability/process.js';
import { makeTestCa, type TestCa } from '../../harness/test-ca.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { echo, openWebSocket } from '../support/websocket.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };

let dir: string;
let ca: TestCa;
let gateway: RecordingUpstream;
let gatewayUrl: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tps-tls-upstream-'));
  ca = makeTestCa(dir, ['localhost']);
  gateway = await startRecordingUpstream(undefined, '127.0.0.1', { tls: { certFile: ca.certFile, keyFile: ca.keyFile } });
  // The certificate names localhost; the sidecar checks the name it connects to.
  gatewayUrl = `https://localhost:${gateway.port}`;
});
afterAll(async () => {
  await gateway.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a gateway whose certificate a trusted CA signed', () => {
  let sc: SidecarProcess;
  beforeAll(async () => {
    sc = await serveProcess({ upstream: { url: gatewayUrl } }, { env: { NODE_EXTRA_CA_CERTS: ca.caFile } });
  });
  afterAll(() => sc.stop());

  test('a request reaches it over TLS with the identity and the assertion', async () => {
    const res = await fetch(`${sc.url}/over-tls`, { headers: ALICE });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    const arrived = gateway.received.find((r) => r.url === '/over-tls')!;
    expect(arrived.headers['x-forwarded-user']).toBe('alice@example.com');
    expect(arrived.headers['x-trusted-proxy-assertion']).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  test('a WebSocket is relayed to it over TLS', async () => {
    const ws = await openWebSocket(`${sc.url.replace('http:', 'ws:')}/ws-over-tls`, ALICE);
    try {
      expect(await echo(ws, 'across TLS')).toBe('across TLS');
      expect(gateway.upgrades.map((u) => u.url)).toContain('/ws-over-tls');
    } finally {
      ws.terminate();
    }
  });
});

describe('a gateway whose certificate no trusted CA signed', () => {
  let sc: SidecarProcess;
  beforeAll(async () => {
    sc = await serveProcess({ upstream: { url: gatewayUrl } });
  });
  afterAll(() => sc.stop());

  test('requests and WebSockets get 502 and nothing reaches its handler', async () => {
    const before = { received: gateway.received.length, upgrades: gateway.upgrades.length };
    const res = await fetch(`${sc.url}/untrusted`, { headers: ALICE });
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: 'upstream_unavailable' });
    await expect(openWebSocket(`${sc.url.replace('http:', 'ws:')}/ws-untrusted`, ALICE)).rejects.toThrow(/502/);
    // Both attempts were made and failed at the handshake: the sidecar says so, twice.
    const failures = await waitFor(() => {
      const found = sc.logs().filter((l) => l['msg'] === 'upstream error');
      return found.length >= 2 && found;
    }, 'two upstream errors logged');
    expect(failures.map((l) => l['code'])).toEqual(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
    expect({ received: gateway.received.length, upgrades: gateway.upgrades.length }).toEqual(before);
  });
});
