import { createHmac, generateKeyPairSync, createSign } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import type { AssertionClaims } from '../../../src/assertion/claims.js';
import { AssertionSigner, randomId } from '../../../src/assertion/sign.js';
import { AssertionError, ReplayCache, verifyAssertion, type VerifyOptions } from '../../../src/assertion/verify.js';
import { KEY, KEYS, KID, NOW_MS } from '../context.js';

const NOW = NOW_MS / 1000;
const claims = (over: Partial<AssertionClaims> = {}): AssertionClaims => ({
  iss: 'trusted-proxy-sidecar',
  aud: 'gateway',
  sub: 'alice@example.com',
  email: 'alice@example.com',
  groups: ['admins'],
  iat: NOW,
  nbf: NOW,
  exp: NOW + 30,
  jti: randomId(),
  cip: '203.0.113.7',
  htm: 'GET',
  htu: 'https://app.example/a/b',
  ...over,
});
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** A token assembled by hand, so every field can be wrong on purpose. */
function handmade(header: object, payload: object, key: Buffer = KEY, alg = 'sha256'): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(alg, key).update(input).digest('base64url')}`;
}
const options = (over: Partial<VerifyOptions> = {}): VerifyOptions => ({
  keys: KEYS,
  now: () => NOW_MS,
  request: { method: 'GET', uri: 'https://app.example/a/b' },
  ...over,
});
async function failure(token: string, over: Partial<VerifyOptions> = {}): Promise<string> {
  try {
    await verifyAssertion(token, options(over));
  } catch (err) {
    expect(err).toBeInstanceOf(AssertionError);
    return (err as AssertionError).code;
  }
  throw new Error('verified');
}

const signer = new AssertionSigner(KID, KEY);
const HEADER = { alg: 'HS256', typ: 'JWT', kid: KID };

describe('signer', () => {
  test('header and encoding are as documented, and the MAC is HMAC-SHA256 of the signing input', () => {
    const c = claims();
    const token = signer.sign(c);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const [h, p, s] = token.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual(HEADER);
    expect(JSON.parse(Buffer.from(p, 'base64url').toString())).toEqual(c);
    expect(s).toBe(createHmac('sha256', KEY).update(`${h}.${p}`).digest('base64url'));
    expect(token).toBe(handmade(HEADER, c));
  });

  // Keys shorter than, equal to and longer than SHA-256's 64-byte block (HMAC hashes a
  // long key first), and signing inputs of every size a claim set reaches.
  test.each([1, 16, 32, 63, 64, 65, 200])('a %i-byte key MACs exactly as createHmac, for short and long inputs', (length) => {
    const key = Buffer.from(Array.from({ length }, (_, i) => (i * 37 + length) & 0xff));
    const s = new AssertionSigner('k', key);
    for (const groups of [[], ['g'.repeat(700)], Array.from({ length: 40 }, (_, i) => `group-${i}`), ['x'.repeat(5000)]]) {
      const [h, p, mac] = s.sign(claims({ groups })).split('.') as [string, string, string];
      expect(mac).toBe(createHmac('sha256', key).update(`${h}.${p}`).digest('base64url'));
    }
  });
  test('jose, an independent implementation, verifies what the signer mints', async () => {
    const c = claims({ sub: 'quote " backslash \\ and \u2028 and zoë' });
    const { payload, protectedHeader } = await jwtVerify(signer.sign(c), KEY, { algorithms: ['HS256'], currentDate: new Date(NOW_MS) });
    expect(protectedHeader).toEqual(HEADER);
    expect(payload).toEqual(c);
  });

  test('jti carries at least 128 random bits and does not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const id = randomId();
      expect(Buffer.from(id, 'base64url')).toHaveLength(16);
      seen.add(id);
    }
    expect(seen.size).toBe(5000);
  });

  test('the verifier accepts the signer token and returns its claims', async () => {
    const c = claims();
    await expect(verifyAssertion(signer.sign(c), options())).resolves.toEqual({ ...c, kid: KID });
  });
});

describe('verifier refuses', () => {
  test.each([
    ['HS512', { ...HEADER, alg: 'HS512' }, 'sha512'],
    ['HS384', { ...HEADER, alg: 'HS384' }, 'sha384'],
    ['an RS256 header over an HMAC', { ...HEADER, alg: 'RS256' }, 'sha256'],
    ['lower-case hs256', { ...HEADER, alg: 'hs256' }, 'sha256'],
  ])('%s', async (_what, header, alg) => {
    expect(await failure(handmade(header, claims(), KEY, alg))).toBe('algorithm');
  });

  test('alg none, with and without a signature', async () => {
    const unsigned = `${b64({ alg: 'none', typ: 'JWT', kid: KID })}.${b64(claims())}`;
    expect(await failure(`${unsigned}.`)).toBe('algorithm');
    expect(await failure(`${unsigned}.${createHmac('sha256', KEY).update(unsigned).digest('base64url')}`)).toBe('algorithm');
  });

  test('an RS256 token signed with a real RSA key', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const input = `${b64({ ...HEADER, alg: 'RS256' })}.${b64(claims())}`;
    const sig = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
    expect(await failure(`${input}.${sig}`)).toBe('algorithm');
  });

  test('a bad signature: another key, a flipped bit, a truncated or missing MAC', async () => {
    const good = signer.sign(claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    expect(await failure(handmade(HEADER, claims(), Buffer.alloc(32, 8)))).toBe('signature');
    const flipped = Buffer.from(s, 'base64url');
    flipped[0]! ^= 1;
    expect(await failure(`${h}.${p}.${flipped.toString('base64url')}`)).toBe('signature');
    expect(await failure(`${h}.${p}.${s.slice(0, 20)}`)).toBe('signature');
    expect(await failure(`${h}.${p}.`)).toBe('signature');
    // A payload swapped under a valid MAC.
    expect(await failure(`${h}.${b64(claims({ sub: 'root' }))}.${s}`)).toBe('signature');
  });

  test('an unknown or missing kid', async () => {
    expect(await failure(handmade({ ...HEADER, kid: 'k2' }, claims()))).toBe('unknown_key');
    expect(await failure(handmade({ alg: 'HS256', typ: 'JWT' }, claims()))).toBe('unknown_key');
    expect(await failure(handmade({ ...HEADER, kid: 7 }, claims()))).toBe('unknown_key');
    expect(await failure(handmade({ ...HEADER, kid: '__proto__' }, claims()))).toBe('unknown_key');
  });

  test('expired, beyond the clock tolerance', async () => {
    const token = signer.sign(claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW - 6 }));
    expect(await failure(token)).toBe('expired');
    // Within the 5 s tolerance it still passes.
    await expect(verifyAssertion(signer.sign(claims({ exp: NOW - 4 })), options())).resolves.toBeDefined();
  });

  test('not yet valid', async () => {
    expect(await failure(signer.sign(claims({ nbf: NOW + 60, iat: NOW + 60, exp: NOW + 90 })))).toBe('not_yet_valid');
  });

  test('wrong issuer or audience', async () => {
    expect(await failure(signer.sign(claims({ iss: 'someone-else' })))).toBe('issuer');
    expect(await failure(signer.sign(claims({ aud: 'another-gateway' })))).toBe('audience');
    expect(await failure(signer.sign(claims()), { audience: 'another-gateway' })).toBe('audience');
  });

  test('minted for another method or target', async () => {
    const token = signer.sign(claims());
    expect(await failure(token, { request: { method: 'POST', uri: 'https://app.example/a/b' } })).toBe('method');
    expect(await failure(token, { request: { method: 'GET', uri: 'https://app.example/a/c' } })).toBe('target');
    expect(await failure(token, { request: { method: 'GET', uri: 'http://app.example/a/b' } })).toBe('target');
    expect(await failure(token, { request: { method: 'GET', uri: 'https://evil.example/a/b' } })).toBe('target');
  });

  test('a replay, once a replay cache is given', async () => {
    const cache = new ReplayCache();
    const token = signer.sign(claims());
    await expect(verifyAssertion(token, options({ replayCache: cache }))).resolves.toBeDefined();
    expect(await failure(token, { replayCache: cache })).toBe('replayed');
    // A fresh token for the same request is fine.
    await expect(verifyAssertion(signer.sign(claims()), options({ replayCache: cache }))).resolves.toBeDefined();
  });

  test('a full replay cache refuses a new id while every one it holds is live, and never grows past its bound', () => {
    const cache = new ReplayCache(3);
    for (const id of ['a', 'b', 'c']) expect(cache.claim(id, NOW + 30, NOW)).toBe('fresh');
    // Forgetting 'a' to make room would let 'a' be replayed.
    expect(cache.claim('d', NOW + 30, NOW)).toBe('full');
    expect(cache.claim('a', NOW + 30, NOW)).toBe('replayed');
    // Once an entry is past its last valid second, its place is free.
    expect(cache.claim('d', NOW + 60, NOW + 31)).toBe('fresh');
    expect(cache.claim('d', NOW + 60, NOW + 31)).toBe('replayed');
  });

  test('a replay within the clock tolerance after exp is still a replay', async () => {
    const cache = new ReplayCache(1);
    const token = signer.sign(claims());
    await expect(verifyAssertion(token, options({ replayCache: cache }))).resolves.toBeDefined();
    const stillValid = (claims().exp + 4) * 1000;
    expect(await failure(token, { replayCache: cache, now: () => stillValid })).toBe('replayed');
  });

  test('the scopes header must say the scope claim, and may not come without one', async () => {
    const request = (received: string | undefined) => ({ method: claims().htm, uri: claims().htu, scopes: { received } });
    const scoped = signer.sign({ ...claims(), scope: 'operator.read operator.write' });
    await expect(verifyAssertion(scoped, options({ request: request('operator.read,operator.write') }))).resolves.toMatchObject({
      scope: 'operator.read operator.write',
    });
    expect(await failure(scoped, { request: request('operator.read,operator.write,operator.admin') })).toBe('scopes');
    expect(await failure(scoped, { request: request(undefined) })).toBe('scopes');
    const unscoped = signer.sign(claims());
    expect(await failure(unscoped, { request: request('operator.admin') })).toBe('scopes');
    await expect(verifyAssertion(unscoped, options({ request: request(undefined) }))).resolves.toBeDefined();
    const none = signer.sign({ ...claims(), scope: '' });
    await expect(verifyAssertion(none, options({ request: request('') }))).resolves.toBeDefined();
    expect(await failure(signer.sign({ ...claims(), scope: ['a'] as never }), {})).toBe('claims');
  });

  test('missing or mistyped claims', async () => {
    for (const drop of ['sub', 'exp', 'nbf', 'iat', 'jti', 'htm', 'htu'] as const) {
      const c: Record<string, unknown> = { ...claims() };
      delete c[drop];
      expect(await failure(handmade(HEADER, c), { request: undefined })).toBe('claims');
    }
    expect(await failure(handmade(HEADER, { ...claims(), groups: 'admins' }))).toBe('claims');
    expect(await failure(handmade(HEADER, { ...claims(), sub: 42 }))).toBe('claims');
  });

  test.each([
    ['empty', ''],
    ['one part', 'abc'],
    ['two parts', 'abc.def'],
    ['four parts', 'a.b.c.d'],
    ['not base64url', '!!!.###.$$$'],
    ['header not JSON', `${b64('not json')}.${b64(claims())}.x`],
    ['payload not JSON', `${b64(HEADER)}.${b64('not json')}.x`],
    ['padded', `${b64(HEADER)}=.${b64(claims())}.x`],
  ])('malformed: %s', async (_what, token) => {
    expect(['malformed', 'signature']).toContain(await failure(token));
  });

  test('the header a verifier sees is exactly what the signer wrote', () => {
    expect(decodeProtectedHeader(signer.sign(claims()))).toEqual(HEADER);
  });
});
