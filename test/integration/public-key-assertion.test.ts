// A sidecar signing with a key pair: its public keys on the admin port and in the JWK Set
// file, an assertion the gateway verifies with them alone (no secret anywhere near it), a
// rotation that adds the new key to both before it signs, and the HS256 sidecar that has
// nothing public to serve.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { newKeyFile } from '../../src/assertion/keys.js';
import { verifyAssertion } from '../../src/assertion/verify.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const USER = { 'x-auth-request-email': 'alice@example.com', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'claw.example.com' };
let upstream: RecordingUpstream;
let dir: string;
let sc: TestSidecar;

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  dir = mkdtempSync(join(tmpdir(), 'tps-keypair-'));
  writeFileSync(join(dir, 'ed-1'), newKeyFile('EdDSA'));
  sc = await startSidecar(
    upstream.url,
    { assertion: { algorithm: 'EdDSA', keysDir: dir, activeKeyId: 'ed-1', jwksFile: `${dir}.jwks.json` } },
    { configFile: true },
  );
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.jwks.json`, { force: true });
});

const served = async () => {
  const res = await fetch(`${sc.adminUrl}/.well-known/jwks.json`);
  expect(res.status).toBe(200);
  return (await res.json()) as { keys: { kid: string; alg: string; d?: string }[] };
};

test('the public keys are served and written to the file, and the forwarded assertion verifies with them alone', async () => {
  const set = await served();
  expect(set.keys.map((k) => [k.kid, k.alg, k.d])).toEqual([['ed-1', 'EdDSA', undefined]]);
  expect(JSON.parse(readFileSync(`${dir}.jwks.json`, 'utf8'))).toEqual(set);

  expect((await fetch(`${sc.url}/api/status?x=1`, { headers: USER })).status).toBe(200);
  const token = upstream.valuesOf(upstream.received.at(-1)!, 'x-trusted-proxy-assertion')[0]!;
  expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: 'ed-1' });
  const request = { method: 'GET', uri: 'https://claw.example.com/api/status?x=1' };
  for (const jwks of [`${sc.adminUrl}/.well-known/jwks.json`, `${dir}.jwks.json`, set as never]) {
    expect((await verifyAssertion(token, { jwks, request })).sub).toBe('alice@example.com');
  }
  // The shared-key path cannot be talked into accepting it.
  await expect(verifyAssertion(token, { keys: new Map([['ed-1', Buffer.alloc(32)]]) })).rejects.toMatchObject({ code: 'algorithm' });
});

test('a rotation: the added key is published at once, and signs once the config names it', async () => {
  writeFileSync(join(dir, 'ed-2'), newKeyFile('EdDSA'));
  await waitFor(async () => (await served()).keys.length === 2, 'both keys published');
  expect(JSON.parse(readFileSync(`${dir}.jwks.json`, 'utf8')).keys.map((k: { kid: string }) => k.kid)).toEqual(['ed-1', 'ed-2']);
  sc.writeConfig({ ...sc.input, assertion: { ...sc.input.assertion, activeKeyId: 'ed-2' } });
  await waitFor(() => sc.logs.some((l) => l.msg === 'config reloaded'), 'config reload');
  expect((await fetch(`${sc.url}/next`, { headers: USER })).status).toBe(200);
  const token = upstream.valuesOf(upstream.received.at(-1)!, 'x-trusted-proxy-assertion')[0]!;
  expect(decodeProtectedHeader(token).kid).toBe('ed-2');
  // A verifier that read the file before the rotation reads it again only after its cooldown;
  // the file as it is now verifies the new key's assertion.
  expect((await verifyAssertion(token, { jwks: JSON.parse(readFileSync(`${dir}.jwks.json`, 'utf8')) })).kid).toBe('ed-2');
});

test('an HS256 sidecar has no public keys to serve', async () => {
  const hs = await startSidecar(upstream.url);
  try {
    const res = await fetch(`${hs.adminUrl}/.well-known/jwks.json`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'no_public_keys' });
  } finally {
    await hs.stop();
  }
});
