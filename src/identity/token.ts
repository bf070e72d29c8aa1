// The identity provider's own token (an OpenID Connect ID token that oauth2-proxy passes
// along), verified against the provider's public keys, which the shell fetches and the
// snapshot holds (provider-keys.ts). Verification is synchronous so the decision stays a
// pure function: the signature is node:crypto's, the JWS and claim rules are RFC 7515 and
// 7519's, and a differential test holds the whole against jose over every input class.
import { constants, verify, type KeyObject } from 'node:crypto';
import type { TokenAlgorithm } from '../config/schema.js';
import { refuse, type Refusal } from '../vocabulary/refusals.js';

export interface ProviderKey {
  readonly key: KeyObject;
  /** The JWK's `alg`, when it names one: the key then verifies that algorithm only. */
  readonly alg: string | undefined;
}

/** The provider's keys as last fetched; `undefined` in the snapshot until they are (or once stale). */
export interface ProviderKeys {
  readonly byKid: ReadonlyMap<string, ProviderKey>;
  /** Keys without a `kid`: a token without one may use any that fits its algorithm. */
  readonly unnamed: readonly ProviderKey[];
}

export interface TokenRules {
  readonly issuer: string;
  readonly audiences: ReadonlySet<string>;
  readonly algorithms: ReadonlySet<string>;
  readonly clockSkewSeconds: number;
}

/** The most a token may hold: far above any ID token, far below a header limit's worth of work. */
const MAX_TOKEN_CHARS = 16_384;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export type TokenResult = { ok: true; claims: Readonly<Record<string, unknown>> } | Refusal;

/** Verifies a compact JWS token's signature and registered claims at `nowSeconds`. */
export function verifyProviderToken(token: string, keys: ProviderKeys | undefined, rules: TokenRules, nowSeconds: number): TokenResult {
  if (keys === undefined) return refuse('identity_token_keys_unavailable');
  if (token.length > MAX_TOKEN_CHARS) return refuse('identity_token_invalid', 'token too long');
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) return refuse('identity_token_invalid', 'not a compact JWS');
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = jsonObject(encodedHeader);
  if (header === undefined) return refuse('identity_token_invalid', 'header is not a JSON object');
  const alg = header['alg'];
  if (typeof alg !== 'string' || !rules.algorithms.has(alg)) return refuse('identity_token_invalid', `algorithm ${String(alg)} not allowed`);
  // No JWS extension is understood, so none may be critical (RFC 7515, 4.1.11).
  if (header['crit'] !== undefined || header['b64'] !== undefined) return refuse('identity_token_invalid', 'unsupported header parameter');
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') return refuse('identity_token_invalid', 'kid is not a string');
  const key = keyFor(keys, kid, alg as TokenAlgorithm);
  // The shell fetches the key set again (rate-limited) on this refusal: a rotation at the provider.
  if (key === undefined) return refuse('identity_token_unknown_key', kid === undefined ? 'no one key fits a token without kid' : `no key ${kid} for ${alg}`);
  const signature = Buffer.from(encodedSignature, 'base64url');
  if (!signatureValid(alg as TokenAlgorithm, key, `${encodedHeader}.${encodedPayload}`, signature)) return refuse('identity_token_invalid', 'bad signature');

  const claims = jsonObject(encodedPayload);
  if (claims === undefined) return refuse('identity_token_invalid', 'payload is not a JSON object');
  if (claims['iss'] !== rules.issuer) return refuse('identity_token_rejected', 'issuer');
  const aud = claims['aud'];
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((a) => typeof a === 'string' && rules.audiences.has(a))) return refuse('identity_token_rejected', 'audience');
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return refuse('identity_token_rejected', 'no exp');
  if (nowSeconds - rules.clockSkewSeconds >= exp) return refuse('identity_token_expired', 'expired');
  for (const name of ['nbf', 'iat'] as const) {
    const value = claims[name];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) return refuse('identity_token_rejected', `${name} is not a number`);
  }
  const nbf = claims['nbf'];
  if (typeof nbf === 'number' && nowSeconds + rules.clockSkewSeconds < nbf) return refuse('identity_token_expired', 'not yet valid');
  // A token from the future was minted by a clock, or a key holder, that cannot be trusted
  // to date it (jose's maxTokenAge check: "it should be in the past").
  const iat = claims['iat'];
  if (typeof iat === 'number' && nowSeconds + rules.clockSkewSeconds < iat) return refuse('identity_token_rejected', 'issued in the future');
  return { ok: true, claims };
}

function jsonObject(encoded: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function keyFor(keys: ProviderKeys, kid: string | undefined, alg: TokenAlgorithm): KeyObject | undefined {
  const usable = (k: ProviderKey | undefined) => k !== undefined && (k.alg === undefined || k.alg === alg) && fits(k.key, alg);
  if (kid !== undefined) {
    const named = keys.byKid.get(kid);
    return usable(named) ? named!.key : undefined;
  }
  // Without a kid the key must be unambiguous.
  const fitting = [...keys.unnamed, ...keys.byKid.values()].filter(usable);
  return fitting.length === 1 ? fitting[0]!.key : undefined;
}

/** The key's type and curve must be the algorithm's (RFC 7518, 3): an RSA key never checks an EC signature. */
function fits(key: KeyObject, alg: TokenAlgorithm): boolean {
  const type = key.asymmetricKeyType;
  // RSA keys under 2048 bits are refused, as jose and RFC 7518 (3.3) ask.
  if (alg.startsWith('RS') || alg.startsWith('PS'))
    return (type === 'rsa' || (type === 'rsa-pss' && alg.startsWith('PS'))) && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
  if (alg === 'EdDSA') return type === 'ed25519';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return type === 'ec' && curve === (alg === 'ES256' ? 'prime256v1' : 'secp384r1');
}

const HASH: Record<TokenAlgorithm, string | null> = {
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  EdDSA: null,
};
const SIGNATURE_BYTES: Partial<Record<TokenAlgorithm, number>> = { ES256: 64, ES384: 96, EdDSA: 64 };

function signatureValid(alg: TokenAlgorithm, key: KeyObject, input: string, signature: Buffer): boolean {
  const expected = SIGNATURE_BYTES[alg];
  if (expected !== undefined && signature.length !== expected) return false;
  const data = Buffer.from(input, 'latin1');
  if (alg.startsWith('PS')) {
    const saltLength = Number(alg.slice(2)) / 8;
    return verify(HASH[alg], data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
  }
  if (alg.startsWith('ES')) return verify(HASH[alg], data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  return verify(HASH[alg], data, key, signature);
}
