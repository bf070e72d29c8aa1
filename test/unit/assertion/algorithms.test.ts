// EdDSA and ES256 assertions: key files in both forms, the public JWK Set, jose verifying
// what the signer mints, and the verifier refusing what would let a holder of the public
// keys (or of another key) pass: an HMAC keyed with public key bytes, a key of another
// algorithm, an unknown key id; a key set file read again when a rotation adds a key.
import { jest } from '@jest/globals';
import { createHmac, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK, jwtVerify } from 'jose';
import type { AssertionClaims } from '../../../src/assertion/claims.js';
import { loadKeyRing, newKeyFile, publicKeySet } from '../../../src/assertion/keys.js';
import type { Algorithm } from '../../../src/config/schema.js';
import { AssertionSigner } from '../../../src/assertion/sign.js';
import { AssertionError, keysFromDir, verifyAssertion } from '../../../src/assertion/verify.js';

const NOW = 1_795_000_000;
const claims = (over: Partial<AssertionClaims> = {}): AssertionClaims => ({
  iss: 'trusted-proxy-sidecar',
  aud: 'gateway',
  sub: 'alice@example.com',
  groups: ['claw-readers'],
  iat: NOW,
  nbf: NOW,
  exp: NOW + 30,
  jti: 'q8N3Zx1vQ0m4n8b2Yk3a9w',
  cip: '203.0.113.7',
  htm: 'GET',
  htu: 'https://claw.example.com/api/status',
  ...over,
});
const at = { now: () => (NOW + 1) * 1000 };

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tps-alg-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function failure(token: string, options: Parameters<typeof verifyAssertion>[1]): Promise<string> {
  try {
    await verifyAssertion(token, { ...at, ...options });
    return 'verified';
  } catch (err) {
    return err instanceof AssertionError ? err.code : `unexpected: ${String(err)}`;
  }
}

describe.each(['EdDSA', 'ES256'] as const)('%s', (algorithm: Algorithm) => {
  test('a new key file loads, signs, and jose verifies the token with the published public key alone', async () => {
    writeFileSync(join(dir, 'k1'), newKeyFile(algorithm));
    const ring = loadKeyRing(dir, '', algorithm);
    expect(ring).toMatchObject({ algorithm, activeKeyId: 'k1', problems: [] });
    const token = new AssertionSigner('k1', ring.keys.get('k1')!).sign(claims());
    const set = publicKeySet(ring);
    expect(set.keys).toHaveLength(1);
    expect(set.keys[0]).toMatchObject({ kid: 'k1', alg: algorithm, use: 'sig' });
    expect(set.keys[0]).not.toHaveProperty('d');
    const { payload, protectedHeader } = await jwtVerify(token, await importJWK(set.keys[0]!, algorithm), {
      algorithms: [algorithm],
      currentDate: new Date((NOW + 1) * 1000),
    });
    expect(protectedHeader).toEqual({ alg: algorithm, typ: 'JWT', kid: 'k1' });
    expect(payload.sub).toBe('alice@example.com');
    expect((await verifyAssertion(token, { jwks: set, ...at })).sub).toBe('alice@example.com');
    expect((await verifyAssertion(token, { keys: keysFromDir(dir, algorithm), ...at })).kid).toBe('k1');
  });

  test('a private key as a JWK file loads like its PEM', () => {
    const pem = newKeyFile(algorithm);
    writeFileSync(join(dir, 'pem'), pem);
    writeFileSync(join(dir, 'jwk'), JSON.stringify(createPrivateKey(pem).export({ format: 'jwk' })));
    const ring = loadKeyRing(dir, 'jwk', algorithm);
    expect(ring.problems).toEqual([]);
    const [fromPem, fromJwk] = publicKeySet(ring)
      .keys.sort((a, b) => a.kid.localeCompare(b.kid))
      .reverse();
    expect({ ...fromJwk, kid: '' }).toEqual({ ...fromPem, kid: '' });
  });

  test('a token whose header names HS256, MACed with the public key as the secret, is refused', async () => {
    writeFileSync(join(dir, 'k1'), newKeyFile(algorithm));
    const set = publicKeySet(loadKeyRing(dir, '', algorithm));
    const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'k1' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}`;
    for (const secret of [JSON.stringify(set.keys[0]), set.keys[0]!.x!]) {
      expect(await failure(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`, { jwks: set })).toBe('algorithm');
    }
  });
});

test('a key of the other kind, or a PEM in an HS256 folder, is a problem that names it, not a key', () => {
  writeFileSync(join(dir, 'ec'), newKeyFile('ES256'));
  writeFileSync(join(dir, 'ed'), newKeyFile('EdDSA'));
  writeFileSync(join(dir, 'junk'), 'not a key at all, though longer than thirty-two bytes');
  expect(loadKeyRing(dir, 'ed', 'EdDSA').problems).toEqual([
    'key ec: the key is ec prime256v1, not one for EdDSA',
    'key junk: not a private key in PEM or JWK form (EdDSA needs one)',
  ]);
  expect(loadKeyRing(dir, 'ec', 'ES256').problems).toEqual([
    'key ed: the key is ed25519, not one for ES256',
    'key junk: not a private key in PEM or JWK form (ES256 needs one)',
  ]);
  expect(loadKeyRing(dir, 'junk', 'HS256').problems).toEqual([
    'key ec: a PEM key, not an HS256 secret (is assertion.algorithm right?)',
    'key ed: a PEM key, not an HS256 secret (is assertion.algorithm right?)',
  ]);
});

test('a token signed by a key of another algorithm than its header names is refused', async () => {
  writeFileSync(join(dir, 'k1'), newKeyFile('EdDSA'));
  const ring = loadKeyRing(dir, '', 'EdDSA');
  const token = new AssertionSigner('k1', ring.keys.get('k1')!).sign(claims());
  const [, payload, signature] = token.split('.');
  const relabelled = `${Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'k1' })).toString('base64url')}.${payload}.${signature}`;
  expect(await failure(relabelled, { jwks: publicKeySet(ring) })).toBe('unknown_key');
  expect(await failure(relabelled, { keys: keysFromDir(dir, 'EdDSA') })).toBe('algorithm');
});

test('shared keys and a public key set together: each token is checked with its own kind, as during a migration', async () => {
  const shared = Buffer.alloc(32, 9);
  writeFileSync(join(dir, 'k2'), newKeyFile('EdDSA'));
  const ring = loadKeyRing(dir, '', 'EdDSA');
  const options = { keys: new Map([['k1', shared]]), jwks: publicKeySet(ring) };
  expect((await verifyAssertion(new AssertionSigner('k1', shared).sign(claims()), { ...options, ...at })).kid).toBe('k1');
  expect((await verifyAssertion(new AssertionSigner('k2', ring.keys.get('k2')!).sign(claims()), { ...options, ...at })).kid).toBe('k2');
  expect(await failure(new AssertionSigner('k3', Buffer.alloc(32, 1)).sign(claims()), options)).toBe('unknown_key');
});

test('a key set file is read again for an unknown key id, at most every 30 seconds', async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'], now: Date.UTC(2030, 0, 1) });
  try {
    const keys = mkdtempSync(join(dir, 'keys-'));
    writeFileSync(join(keys, 'k1'), newKeyFile('ES256'));
    const path = join(dir, 'jwks.json');
    writeFileSync(path, JSON.stringify(publicKeySet(loadKeyRing(keys, '', 'ES256'))));
    const sign = (kid: string) => new AssertionSigner(kid, loadKeyRing(keys, kid, 'ES256').keys.get(kid)!).sign(claims());
    expect(await failure(sign('k1'), { jwks: path })).toBe('verified');
    // A rotation adds k2; the file follows.
    writeFileSync(join(keys, 'k2'), newKeyFile('ES256'));
    writeFileSync(path, JSON.stringify(publicKeySet(loadKeyRing(keys, 'k2', 'ES256'))));
    expect(await failure(sign('k2'), { jwks: path })).toBe('unknown_key');
    jest.advanceTimersByTime(30_000);
    expect(await failure(sign('k2'), { jwks: path })).toBe('verified');
    expect(await failure(sign('k1'), { jwks: path })).toBe('verified');
    expect(await failure(sign('k1'), { jwks: join(dir, 'missing.json') })).toBe('key_set_unavailable');
  } finally {
    jest.useRealTimers();
  }
});
