// The identity provider's token, verified synchronously (src/identity/token.ts), held
// against jose over every class of token: each algorithm, every registered claim at and
// around its bounds, tampering, foreign keys, key ids, algorithm confusion. Both must
// accept exactly the same tokens. Then the identity stage's modes on top of it.
import { constants, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { decide } from '../../../src/decision/decide.js';
import { importKeySet } from '../../../src/identity/provider-keys.js';
import { verifyProviderToken, type ProviderKeys } from '../../../src/identity/token.js';
import type { TokenAlgorithm } from '../../../src/config/schema.js';
import { context, facts, NOW_MS } from '../context.js';

const NOW = Math.floor(NOW_MS / 1000);
const ISSUER = 'https://idp.example.com';
const SKEW = 30;

function pair(alg: TokenAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  if (alg === 'EdDSA') return generateKeyPairSync('ed25519');
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (alg === 'ES384') return generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}
const ALGS: TokenAlgorithm[] = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const keys = Object.fromEntries(ALGS.map((alg) => [alg, pair(alg)])) as Record<TokenAlgorithm, ReturnType<typeof pair>>;
const stranger = pair('ES256');
const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 });

let jwks: { keys: JWK[] };
beforeAll(async () => {
  jwks = { keys: await Promise.all(ALGS.map(async (alg) => ({ ...(await exportJWK(keys[alg].publicKey)), kid: `k-${alg}`, alg, use: 'sig' }))) };
  jwks.keys.push({ ...(await exportJWK(weakRsa.publicKey)), kid: 'k-weak', alg: 'RS256' });
});

const rules = (algorithms: string[] = ALGS) => ({ issuer: ISSUER, audiences: new Set(['openclaw']), algorithms: new Set(algorithms), clockSkewSeconds: SKEW });

/**
 * jose's verdict with the same rules; exp is required, as the sidecar requires it. One
 * difference on purpose: for a token without a kid the sidecar never considers a key it
 * cannot use (an RSA key under 2048 bits), where jose fails on it; so such tokens are
 * judged by jose against the set without that key.
 */
async function joseAccepts(token: string, algorithms: string[], withoutKid: boolean, claims: Record<string, unknown>): Promise<boolean> {
  const set = withoutKid ? { keys: jwks.keys.filter((k) => k.kid !== 'k-weak') } : jwks;
  try {
    await jwtVerify(token, createLocalJWKSet(set), {
      issuer: ISSUER,
      audience: ['openclaw'],
      algorithms,
      clockTolerance: SKEW,
      currentDate: new Date(NOW * 1000),
      requiredClaims: ['exp'],
      // jose checks that iat is not in the future only with a maximum age (which then needs
      // an iat): one far beyond any case leaves the future check alone.
      ...(claims['iat'] !== undefined && { maxTokenAge: 10 ** 9 }),
    });
    return true;
  } catch {
    return false;
  }
}

interface Case {
  alg: TokenAlgorithm;
  signer: 'own' | 'stranger' | 'weak';
  kid: string | null;
  claims: Record<string, unknown>;
  header: Record<string, unknown>;
  tamper: 'none' | 'payload' | 'signature' | 'truncate';
}

function signCompact(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject, alg: string): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const data = Buffer.from(input);
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  const signature = alg.startsWith('PS')
    ? cryptoSign(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 })
    : alg.startsWith('ES')
      ? cryptoSign(hash, data, { key, dsaEncoding: 'ieee-p1363' })
      : cryptoSign(hash, data, key);
  return `${input}.${signature.toString('base64url')}`;
}

async function mint(c: Case): Promise<string> {
  const key = c.signer === 'own' ? keys[c.alg].privateKey : c.signer === 'stranger' ? stranger.privateKey : weakRsa.privateKey;
  const alg = c.signer === 'stranger' ? 'ES256' : c.signer === 'weak' ? 'RS256' : c.alg;
  const header = { alg, ...(c.kid !== null && { kid: c.kid }), ...c.header };
  // Signed by node:crypto, as an attacker's tool would: jose will not sign with a short RSA
  // key or a critical header it does not know.
  let token = signCompact(header, c.claims, key, alg);
  const [h, p, s] = token.split('.') as [string, string, string];
  if (c.tamper === 'payload') token = `${h}.${Buffer.from(JSON.stringify({ ...c.claims, sub: 'mallory' })).toString('base64url')}.${s}`;
  if (c.tamper === 'signature') token = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BA' : 'AA'}`;
  if (c.tamper === 'truncate') token = `${h}.${p}.${s.slice(0, 10)}`;
  return token;
}

const time = fc.oneof(fc.integer({ min: -100, max: 100 }), fc.constantFrom(-SKEW, SKEW, -SKEW - 1, SKEW + 1, 0)).map((d) => NOW + d);
const claimsArb = fc.record(
  {
    iss: fc.constantFrom(ISSUER, `${ISSUER}/`, 'https://evil.example.com'),
    aud: fc.constantFrom<unknown>('openclaw', ['openclaw', 'other'], ['other'], 'other', []),
    exp: fc.oneof(time, fc.constant<unknown>('1900000000')),
    nbf: time,
    iat: fc.oneof(time, fc.constant<unknown>(null)),
    sub: fc.constant('alice'),
    email: fc.constant('alice@example.com'),
  },
  { requiredKeys: ['sub', 'email'] },
);
const caseArb = fc.record<Case>({
  alg: fc.constantFrom(...ALGS),
  signer: fc.constantFrom('own', 'own', 'own', 'stranger', 'weak'),
  kid: fc.constantFrom<string | null>('__own__', '__own__', null, 'k-unknown', 'k-ES256', 'k-weak'),
  claims: claimsArb,
  header: fc.constantFrom<Record<string, unknown>>({}, {}, { typ: 'JWT' }, { crit: ['exp'], exp: 1 }),
  tamper: fc.constantFrom('none', 'none', 'none', 'payload', 'signature', 'truncate'),
});

test('accepts exactly the tokens jose accepts, over every class', async () => {
  const keySet = () => importKeySet(jwks as never);
  await fc.assert(
    fc.asyncProperty(caseArb, fc.constantFrom(ALGS, ['RS256'], ['ES256', 'EdDSA']), async (c, algorithms) => {
      const token = await mint({ ...c, kid: c.kid === '__own__' ? `k-${c.alg}` : c.kid });
      const ours = verifyProviderToken(token, keySet(), rules(algorithms), NOW).ok;
      expect({ ours, jose: await joseAccepts(token, algorithms, c.kid === null, c.claims) }).toEqual({ ours, jose: ours });
    }),
    { numRuns: 1000 },
  );
});

test('a token that names HS256 and is MACed with a provider public key is refused; so is alg none', async () => {
  const keySet = importKeySet(jwks as never);
  const claims = { iss: ISSUER, aud: 'openclaw', exp: NOW + 60, sub: 'alice' };
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const spki = createPublicKey(keys.RS256.privateKey).export({ format: 'pem', type: 'spki' });
  const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k-RS256' }).sign(Buffer.from(spki));
  expect(verifyProviderToken(hs, keySet, rules([...ALGS, 'HS256']), NOW)).toMatchObject({ ok: false, reason: 'identity_token_unknown_key' });
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`;
  expect(verifyProviderToken(none, keySet, rules(), NOW)).toMatchObject({ ok: false, reason: 'identity_token_invalid' });
  expect(verifyProviderToken('a.b.c', undefined, rules(), NOW)).toMatchObject({ ok: false, reason: 'identity_token_keys_unavailable', status: 503 });
  // A JWK Set's shared secrets are never imported.
  expect(importKeySet({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' }] }).byKid.size).toBe(0);
});

describe('the identity stage with identity.token', () => {
  const base = { identity: { userHeader: 'x-forwarded-email', groupsHeader: 'x-forwarded-groups', token: { issuer: ISSUER, audiences: ['openclaw'] } } };
  const sign = (claims: Record<string, unknown>, alg: TokenAlgorithm = 'ES256') =>
    new SignJWT({ iss: ISSUER, aud: 'openclaw', exp: NOW + 300, email: 'alice@example.com', email_verified: true, groups: ['staff'], ...claims })
      .setProtectedHeader({ alg, kid: `k-${alg}` })
      .sign(keys[alg].privateKey);
  const run = (mode: 'require' | 'match', headers: string[], providerKeys: ProviderKeys | undefined = importKeySet(jwks as never)) =>
    decide(facts(['Host', 'gw', ...headers]), {
      ...context({ ...base, identity: { ...base.identity, token: { ...base.identity.token, mode } } }, { cidrs: ['10.0.0.0/8'] }),
      providerKeys,
    });

  test("require: the identity is the verified token's; headers that are sent must agree", async () => {
    const token = await sign({});
    expect(run('require', ['Authorization', `Bearer ${token}`])).toMatchObject({ ok: true, identity: { user: 'alice@example.com', groups: ['staff'] } });
    expect(run('require', ['Authorization', `Bearer ${token}`, 'X-Forwarded-Email', 'ALICE@example.com'])).toMatchObject({ ok: true });
    expect(run('require', ['Authorization', `Bearer ${token}`, 'X-Forwarded-Email', 'admin@example.com'])).toMatchObject({
      ok: false,
      reason: 'identity_token_mismatch',
      detail: 'user',
    });
    expect(run('require', ['X-Forwarded-Email', 'alice@example.com'])).toMatchObject({ ok: false, reason: 'identity_token_missing', status: 401 });
    expect(run('require', ['Authorization', `Bearer ${await sign({ exp: NOW - 60 })}`])).toMatchObject({ ok: false, reason: 'identity_token_expired' });
    expect(run('require', ['Authorization', `Bearer ${await sign({ aud: 'someone-else' })}`])).toMatchObject({ ok: false, reason: 'identity_token_rejected' });
    expect(run('require', ['Authorization', `Bearer ${await sign({ email: undefined })}`])).toMatchObject({ ok: false, reason: 'identity_token_rejected' });
    // The third adversarial pass: an unverified email named the user.
    for (const unverified of [{ email_verified: false }, { email_verified: 'true' }, { email_verified: undefined }]) {
      expect(run('require', ['Authorization', `Bearer ${await sign(unverified)}`])).toMatchObject({
        ok: false,
        reason: 'identity_token_rejected',
        detail: expect.stringContaining('not verified'),
      });
    }
    expect(run('require', ['Authorization', `Bearer ${await sign({ iat: NOW + SKEW + 1 })}`])).toMatchObject({
      ok: false,
      reason: 'identity_token_rejected',
      detail: 'issued in the future',
    });
    expect(run('require', ['Authorization', `Bearer ${await sign({ iat: NOW + SKEW })}`])).toMatchObject({ ok: true });
    expect(
      decide(facts(['Host', 'gw', 'Authorization', `Bearer ${token}`]), {
        ...context({ ...base, identity: { ...base.identity, token: { ...base.identity.token, mode: 'require' } } }, { cidrs: ['10.0.0.0/8'] }),
        providerKeys: undefined,
      }),
    ).toMatchObject({ ok: false, reason: 'identity_token_keys_unavailable', status: 503 });
  });

  test('match: the headers are the identity and a verified token must agree, groups included', async () => {
    const token = await sign({});
    const alice = ['X-Forwarded-Email', 'alice@example.com', 'X-Forwarded-Groups', 'staff'];
    expect(run('match', [...alice, 'Authorization', `Bearer ${token}`])).toMatchObject({ ok: true, identity: { user: 'alice@example.com' } });
    expect(run('match', alice)).toMatchObject({ ok: false, reason: 'identity_token_missing' });
    expect(run('match', ['X-Forwarded-Email', 'alice@example.com', 'X-Forwarded-Groups', 'staff,admins', 'Authorization', `Bearer ${token}`])).toMatchObject({
      ok: false,
      reason: 'identity_token_mismatch',
      detail: 'a group the token does not hold',
    });
    const forged = await new SignJWT({ iss: ISSUER, aud: 'openclaw', exp: NOW + 300, email: 'alice@example.com' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k-ES256' })
      .sign(stranger.privateKey);
    expect(run('match', [...alice, 'Authorization', `Bearer ${forged}`])).toMatchObject({
      ok: false,
      reason: 'identity_token_invalid',
      detail: 'bad signature',
    });
    expect(run('match', [...alice, 'Authorization', `Bearer ${token}`, 'Authorization', `Bearer ${token}`])).toMatchObject({
      ok: false,
      reason: 'identity_token_invalid',
    });
  });

  test('an unverified email neither names nor backs a user', async () => {
    const unverified = await sign({ email_verified: false });
    const alice = ['X-Forwarded-Email', 'alice@example.com', 'Authorization', `Bearer ${unverified}`];
    expect(run('match', alice)).toMatchObject({ ok: false, reason: 'identity_token_rejected', detail: expect.stringContaining('not verified') });
    // The user by an opaque id: the token's email is then no one's, and cannot back the header's.
    const bySub = (mode: 'require' | 'match', headers: string[]) =>
      decide(facts(['Host', 'gw', ...headers]), {
        ...context(
          { identity: { userHeader: 'x-forwarded-user', emailHeader: 'x-forwarded-email', token: { ...base.identity.token, mode, userClaim: 'sub' } } },
          { cidrs: ['10.0.0.0/8'] },
        ),
        providerKeys: importKeySet(jwks as never),
      });
    const sub = await sign({ sub: 'u-1', email_verified: false });
    expect(bySub('require', ['Authorization', `Bearer ${sub}`])).toMatchObject({ ok: true, identity: { user: 'u-1', email: undefined } });
    expect(bySub('match', ['X-Forwarded-User', 'u-1', 'X-Forwarded-Email', 'alice@example.com', 'Authorization', `Bearer ${sub}`])).toMatchObject({
      ok: false,
      reason: 'identity_token_mismatch',
      detail: 'email not verified by the token',
    });
    const verified = await sign({ sub: 'u-1' });
    expect(bySub('match', ['X-Forwarded-User', 'u-1', 'X-Forwarded-Email', 'alice@example.com', 'Authorization', `Bearer ${verified}`])).toMatchObject({
      ok: true,
      identity: { user: 'u-1', email: 'alice@example.com' },
    });
  });
});
