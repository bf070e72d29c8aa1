// The test vectors published in docs/assertion.md: a verifier written from the docs in
// another language checks itself against them, so the sidecar must keep producing the
// deterministic ones (HS256, EdDSA) exactly and verify all three.
import { createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AssertionSigner } from '../../../src/assertion/sign.js';
import { verifyAssertion } from '../../../src/assertion/verify.js';

const doc = readFileSync(new URL('../../../docs/assertion.md', import.meta.url), 'utf8');
const vectors = doc.slice(doc.indexOf('### Test vectors'), doc.indexOf('## Keys'));
const claims = JSON.parse(/```json\n([\s\S]*?)```/.exec(vectors)![1]!.replace(/\n\s*/g, ''));

function vector(algorithm: string) {
  const start = vectors.indexOf(`#### ${algorithm}\n`);
  expect(start).toBeGreaterThan(0);
  const section = vectors.slice(start, vectors.indexOf('\n#### ', start + 1) === -1 ? undefined : vectors.indexOf('\n#### ', start + 1));
  const token = /```\n(eyJ[\s\S]*?)```/.exec(section)![1]!.replace(/\s/g, '');
  const jwk = (label: string) => JSON.parse(new RegExp(`${label} key \\(JWK\\): \`(\\{.*?\\})\``).exec(section)![1]!) as JsonWebKey;
  return { section, token, jwk };
}

const request = { method: 'GET', uri: 'https://claw.example.com/api/status' };
const at = () => (claims.iat + 1) * 1000;

test('HS256: the signer reproduces the documented token and the verifier accepts it', async () => {
  const { section, token } = vector('HS256');
  const key = Buffer.from(/`(\w{32})`/.exec(section)![1]!);
  expect(new AssertionSigner('k1', key).sign(claims)).toBe(token);
  expect((await verifyAssertion(token, { keys: new Map([['k1', key]]), now: at, request })).sub).toBe('alice@example.com');
});

test('EdDSA: the signer reproduces the documented token, and it verifies with the documented public key', async () => {
  const { token, jwk } = vector('EdDSA');
  expect(new AssertionSigner('k1', createPrivateKey({ key: jwk('Private'), format: 'jwk' })).sign(claims)).toBe(token);
  const jwks = { keys: [{ ...jwk('Public'), kid: 'k1', alg: 'EdDSA' }] };
  expect((await verifyAssertion(token, { jwks, now: at, request })).sub).toBe('alice@example.com');
});

test('ES256: the documented token and a new one from the documented private key verify with the public key', async () => {
  const { token, jwk } = vector('ES256');
  const priv = createPrivateKey({ key: jwk('Private'), format: 'jwk' });
  expect(createPublicKey(priv).export({ format: 'jwk' })).toEqual(jwk('Public'));
  const jwks = { keys: [{ ...jwk('Public'), kid: 'k1', alg: 'ES256' }] };
  const fresh = new AssertionSigner('k1', priv).sign(claims);
  expect(fresh).not.toBe(token);
  for (const t of [token, fresh]) expect((await verifyAssertion(t, { jwks, now: at, request })).sub).toBe('alice@example.com');
});
