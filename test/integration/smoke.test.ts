import { startRecordingUpstream, type RecordingUpstream } from '../support/upstream.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { verifyAssertion } from '../../src/assertion/verify.js';

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
    request: { method: 'GET', uri: `http://127.0.0.1:${sc.port}/a/b` },
  });
  expect(claims.sub).toBe('alice@example.com');
});
