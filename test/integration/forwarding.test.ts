// What the gateway receives: a verifiable assertion bound to exactly the request target it
// is sent (no `..` resolution, no re-encoding on the way), so a verifier recomputing htu
// from its own request always agrees with the sidecar.
import { verifyAssertion } from '../../src/assertion/verify.js';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url);
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
});

test('a trusted identity reaches the gateway with a verifiable assertion', async () => {
  const res = await fetch(`${sc.url}/a/b?q=1`, { headers: { 'x-auth-request-email': 'alice@example.com' } });
  expect(res.status).toBe(200);
  const got = upstream.received.at(-1)!;
  expect(got.headers['x-forwarded-user']).toBe('alice@example.com');
  const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), {
    keys: sc.keys,
    request: { method: 'GET', uri: `http://127.0.0.1:${sc.port}/a/b?q=1` },
  });
  expect(claims.sub).toBe('alice@example.com');
});

test.each(['/a/../b', '/a/./b//c', '/%7euser/x%2Fy', '/p?q=a/../b&r=%20', '/a/%2e%2e/b'])(
  'target %s reaches the gateway unchanged and its assertion verifies there',
  async (target) => {
    const before = upstream.received.length;
    const reply = await rawRequest(sc.port, `GET ${target} HTTP/1.1\r\nHost: gw.example\r\nX-Auth-Request-Email: a@example.com\r\nConnection: close\r\n\r\n`);
    expect(statusOf(reply)).toBe(200);
    const got = upstream.received[before]!;
    expect(got.url).toBe(target);
    await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), {
      keys: sc.keys,
      request: { method: 'GET', uri: `http://gw.example${got.url}` },
    });
  },
);

test('an absolute-form target is refused before it reaches the gateway', async () => {
  const before = upstream.received.length;
  const reply = await rawRequest(
    sc.port,
    'GET http://gw.example/x HTTP/1.1\r\nHost: gw.example\r\nX-Auth-Request-Email: a@example.com\r\nConnection: close\r\n\r\n',
  );
  expect(statusOf(reply)).toBe(400);
  expect(upstream.received.length).toBe(before);
});

// The sidecar's server answers `Expect: 100-continue` itself; the expectation belongs to
// that hop, and the body reaches the gateway without it.
test('a body sent after Expect: 100-continue reaches the gateway, without the expectation', async () => {
  const before = upstream.received.length;
  const reply = await rawRequest(
    sc.port,
    'POST /upload HTTP/1.1\r\nHost: gw.example\r\nX-Auth-Request-Email: a@example.com\r\nExpect: 100-continue\r\n' +
      'Content-Length: 5\r\nConnection: close\r\n\r\nhello',
  );
  expect(reply).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  const got = upstream.received[before]!;
  expect(got.body).toBe('hello');
  expect(got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())).not.toContain('expect');
});
