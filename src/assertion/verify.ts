// The verifier gateways use (`trusted-proxy-sidecar/verify`). It is built on jose, pins
// the algorithm to the key's (HS256 for a shared key, EdDSA or ES256 for a public key from
// a JWK Set, never HS256 then), and checks signature, issuer, audience, time, and, given
// the request, that the assertion was minted for this method and target.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { AssertionClaims } from './claims.js';
import { scopesHeaderValue, targetUri } from './claims.js';
import { keyAlgorithm, loadKeyRing } from './keys.js';
import type { Algorithm } from '../config/schema.js';

export type AssertionErrorCode =
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'key_set_unavailable'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issuer'
  | 'audience'
  | 'claims'
  | 'method'
  | 'target'
  | 'scopes'
  | 'replayed'
  | 'replay_cache_full';

export class AssertionError extends Error {
  constructor(
    readonly code: AssertionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AssertionError';
  }
}

/**
 * Remembers seen `jti` values for as long as their assertion verifies: until `exp` plus the
 * clock tolerance. Bounded: when every entry is still live, a new id is refused rather than
 * an old one forgotten (forgetting would let that one be replayed).
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries = 100_000) {}

  /** `until`: the last second the assertion verifies. */
  claim(jti: string, until: number, nowSeconds: number): 'fresh' | 'replayed' | 'full' {
    if (this.seen.has(jti)) return 'replayed';
    if (this.seen.size >= this.maxEntries) {
      // Ids come in the order they were minted, so the oldest are first: forget the expired
      // ones up to the first that still verifies, rather than walk every entry on each claim.
      for (const [id, last] of this.seen) {
        if (last >= nowSeconds) break;
        this.seen.delete(id);
      }
      if (this.seen.size >= this.maxEntries) return 'full';
    }
    this.seen.set(jti, until);
    return 'fresh';
  }
}

/** Keys by id: a Map, or a key folder watched for rotation (`watchKeysDir`). */
export interface KeyLookup {
  get(kid: string): Uint8Array | KeyObject | undefined;
}

export interface VerifyOptions {
  /** Key id → HS256 key bytes, or key objects (a secret, or a public or private EdDSA/ES256 key); or use `watchKeysDir`. */
  keys?: KeyLookup;
  /**
   * The sidecar's public keys (EdDSA, ES256) as a JWK Set: the set itself, a file path, or
   * an http(s) URL (the admin port's /.well-known/jwks.json). A file or URL is cached and
   * read again when a token names a key id it lacks, at most every 30 s.
   */
  jwks?: JSONWebKeySet | string;
  issuer?: string;
  audience?: string;
  clockToleranceSeconds?: number;
  /**
   * When given, `htm` and `htu` must match this request; with `scopes`, so must the scopes
   * header as the gateway received it (`received`: its value, undefined when absent): it
   * must say the assertion's `scope`, and may not be sent with an assertion that has none.
   */
  request?: { method: string; uri: string; scopes?: { received: string | undefined } };
  replayCache?: ReplayCache;
  now?: () => number;
}

export type VerifiedAssertion = AssertionClaims & { kid: string };

/** The keys of a sidecar key folder (HS256 secrets by default), read once. */
export function keysFromDir(dir: string, algorithm: Algorithm = 'HS256'): Map<string, KeyObject> {
  return new Map(loadKeyRing(dir, '', algorithm).keys);
}

/** A watched key folder is read again on an unknown key id at least this often, changed or not. */
const KEY_DIR_MAX_AGE_MS = 30_000;

/**
 * A sidecar key folder, read again when a token names a key id it lacks and the folder has
 * changed since it was read (its modification time: a Secret mount's update swaps a link in
 * it, a key file added changes it), or was read over 30 s ago. A rotation adds the new key
 * to the folder before the sidecar signs with it; a verifier that read the folder once
 * refused every request after the switch until it restarted. A miss costs one stat, so
 * unknown key ids cannot make it read the folder more often than the folder changes.
 */
export function watchKeysDir(dir: string, algorithm: Algorithm = 'HS256'): KeyLookup & { readonly size: number } {
  const version = () => {
    try {
      return statSync(dir, { bigint: true }).mtimeNs;
    } catch {
      return -1n;
    }
  };
  let readVersion = version();
  let readAt = Date.now();
  let keys = keysFromDir(dir, algorithm);
  return {
    get(kid) {
      const key = keys.get(kid);
      if (key !== undefined) return key;
      const now = version();
      if (now === readVersion && Date.now() - readAt < KEY_DIR_MAX_AGE_MS) return undefined;
      readVersion = now;
      readAt = Date.now();
      keys = keysFromDir(dir, algorithm);
      return keys.get(kid);
    },
    get size() {
      return keys.size;
    },
  };
}

const keyObjects = new WeakMap<Uint8Array | KeyObject, KeyObject>();
/** The key that verifies: bytes become a secret, a private key gives its public half. */
function keyObject(key: Uint8Array | KeyObject): KeyObject {
  if (!(key instanceof Uint8Array) && key.type !== 'private') return key;
  let k = keyObjects.get(key);
  if (!k) keyObjects.set(key, (k = key instanceof Uint8Array ? createSecretKey(key) : createPublicKey(key)));
  return k;
}

/** How long a key set file or URL is trusted before an unknown key id may read it again. */
const KEY_SET_COOLDOWN_MS = 30_000;
const keySets = new Map<string, JWTVerifyGetKey>();
const givenKeySets = new WeakMap<JSONWebKeySet, JWTVerifyGetKey>();

function keySet(jwks: JSONWebKeySet | string): JWTVerifyGetKey {
  if (typeof jwks !== 'string') {
    let set = givenKeySets.get(jwks);
    if (!set) givenKeySets.set(jwks, (set = createLocalJWKSet(jwks)));
    return set;
  }
  let set = keySets.get(jwks);
  if (!set) {
    set = /^https?:\/\//.test(jwks)
      ? createRemoteJWKSet(new URL(jwks), { cooldownDuration: KEY_SET_COOLDOWN_MS, cacheMaxAge: 10 * 60_000, timeoutDuration: 5000 })
      : fileKeySet(jwks);
    keySets.set(jwks, set);
  }
  return set;
}

/** A JWK Set file, read again (at most every cooldown) when a token names a key it lacks: a rotation adds keys there first. */
function fileKeySet(path: string): JWTVerifyGetKey {
  let set: JWTVerifyGetKey | undefined;
  let readAt = 0;
  const read = () => {
    readAt = Date.now();
    set = createLocalJWKSet(JSON.parse(readFileSync(path, 'utf8')) as JSONWebKeySet);
    return set;
  };
  return async (header, token) => {
    let current: JWTVerifyGetKey;
    try {
      current = set ?? read();
    } catch (err) {
      throw new AssertionError('key_set_unavailable', `cannot read ${path}: ${(err as Error).message}`);
    }
    try {
      return await current(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || Date.now() - readAt < KEY_SET_COOLDOWN_MS) throw err;
      try {
        current = read();
      } catch (readErr) {
        throw new AssertionError('key_set_unavailable', `cannot read ${path}: ${(readErr as Error).message}`);
      }
      return current(header, token);
    }
  };
}

/** The key to verify with and the one algorithm allowed for it. */
function verificationKey(
  header: { alg?: string; kid?: string },
  options: VerifyOptions,
): { kid: string; key: KeyObject | JWTVerifyGetKey; algorithms: Algorithm[] } {
  if (typeof header.kid !== 'string') throw new AssertionError('unknown_key', 'no kid in header');
  const given = options.keys?.get(header.kid);
  if (given !== undefined) {
    const key = keyObject(given);
    const algorithm = keyAlgorithm(key);
    if (algorithm === undefined || header.alg !== algorithm)
      throw new AssertionError('algorithm', `algorithm ${String(header.alg)} does not fit key ${header.kid}`);
    return { kid: header.kid, key, algorithms: [algorithm] };
  }
  if (options.jwks === undefined || (header.alg === 'HS256' && options.keys !== undefined)) throw new AssertionError('unknown_key', `no key ${header.kid}`);
  // A public key set never verifies an HMAC: that would let anyone holding it mint tokens.
  if (header.alg !== 'EdDSA' && header.alg !== 'ES256') throw new AssertionError('algorithm', `algorithm ${String(header.alg)} is not EdDSA or ES256`);
  return { kid: header.kid, key: keySet(options.jwks), algorithms: [header.alg] };
}

export async function verifyAssertion(token: string, options: VerifyOptions): Promise<VerifiedAssertion> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new AssertionError('malformed', 'not a JWS compact token');
  }
  const { kid, key, algorithms } = verificationKey(header, options);
  const nowSeconds = Math.floor((options.now?.() ?? Date.now()) / 1000);
  const checks = verifyOptions(options, algorithms, nowSeconds);
  let payload: Record<string, unknown>;
  try {
    // Two calls for jose's two overloads: a key, or a function that finds one in a set.
    ({ payload } = await (typeof key === 'function' ? jwtVerify(token, key, checks) : jwtVerify(token, key, checks)));
  } catch (err) {
    throw mapJoseError(err);
  }
  const claims = payload as unknown as AssertionClaims;
  if (
    typeof claims.sub !== 'string' ||
    typeof claims.jti !== 'string' ||
    !Array.isArray(claims.groups) ||
    (claims.scope !== undefined && typeof claims.scope !== 'string') ||
    (claims.route !== undefined && typeof claims.route !== 'string')
  ) {
    throw new AssertionError('claims', 'claims of the wrong type');
  }
  if (options.request) {
    if (claims.htm !== options.request.method) throw new AssertionError('method', 'assertion minted for another method');
    if (claims.htu !== options.request.uri) throw new AssertionError('target', 'assertion minted for another target');
    const scopes = options.request.scopes;
    if (scopes && (claims.scope === undefined ? scopes.received !== undefined : scopes.received !== scopesHeaderValue(claims.scope))) {
      throw new AssertionError('scopes', "the scopes header is not the assertion's");
    }
  }
  if (options.replayCache) {
    const verdict = options.replayCache.claim(claims.jti, claims.exp + checks.clockTolerance, nowSeconds);
    if (verdict === 'replayed') throw new AssertionError('replayed', 'assertion already used');
    if (verdict === 'full') throw new AssertionError('replay_cache_full', 'too many live assertions to remember another');
  }
  return { ...claims, kid };
}

function verifyOptions(options: VerifyOptions, algorithms: Algorithm[], nowSeconds: number) {
  return {
    algorithms,
    typ: 'JWT',
    issuer: options.issuer ?? 'trusted-proxy-sidecar',
    audience: options.audience ?? 'gateway',
    clockTolerance: options.clockToleranceSeconds ?? 5,
    currentDate: new Date(nowSeconds * 1000),
    requiredClaims: ['sub', 'iat', 'nbf', 'exp', 'jti', 'htm', 'htu'],
  };
}

function mapJoseError(err: unknown): AssertionError {
  if (err instanceof AssertionError) return err;
  if (err instanceof errors.JWKSNoMatchingKey) return new AssertionError('unknown_key', 'no key of that id in the key set');
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return new AssertionError('key_set_unavailable', err.message);
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AssertionError('signature', 'bad signature');
  if (err instanceof errors.JWTExpired) return new AssertionError('expired', 'assertion expired');
  if (err instanceof errors.JOSEAlgNotAllowed) return new AssertionError('algorithm', err.message);
  if (err instanceof errors.JWTClaimValidationFailed) {
    // A missing claim is a malformed assertion, not, say, one that is "not yet valid".
    if (err.reason === 'missing') return new AssertionError('claims', err.message);
    if (err.claim === 'iss') return new AssertionError('issuer', 'wrong issuer');
    if (err.claim === 'aud') return new AssertionError('audience', 'wrong audience');
    if (err.claim === 'nbf') return new AssertionError('not_yet_valid', 'assertion not yet valid');
    return new AssertionError('claims', err.message);
  }
  return new AssertionError('malformed', err instanceof Error ? err.message : 'malformed');
}

/** `proto://host/target` of a request as the sidecar forwarded it (its X-Forwarded-* are its own). */
export function requestUri(req: IncomingMessage): string {
  const proto = firstHeader(req, 'x-forwarded-proto') ?? 'http';
  const host = firstHeader(req, 'x-forwarded-host') ?? req.headers.host ?? '';
  return targetUri(proto, host, req.url ?? '/');
}

/** The scopes check of a request: the header's value as received, or undefined when absent. */
export function receivedScopes(req: IncomingMessage, header: string): { received: string | undefined } {
  const value = req.headers[header];
  return { received: Array.isArray(value) ? value.join(', ') : value };
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface MiddlewareOptions extends Omit<VerifyOptions, 'request'> {
  header?: string;
  /** The sidecar's gateway.scopesHeader: when set, it must say the assertion's `scope`. */
  scopesHeader?: string;
}

/**
 * Middleware for Node's http and express: verifies the assertion bound to this request,
 * sets `req.assertion`, or answers 401 `{"error":"assertion_<code>"}`.
 */
export function assertionMiddleware(options: MiddlewareOptions) {
  const header = (options.header ?? 'x-trusted-proxy-assertion').toLowerCase();
  return (req: IncomingMessage & { assertion?: VerifiedAssertion }, res: ServerResponse, next: (err?: unknown) => void) => {
    const token = req.headers[header];
    if (typeof token !== 'string') {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"assertion_missing"}');
      return;
    }
    const scopes = options.scopesHeader ? receivedScopes(req, options.scopesHeader.toLowerCase()) : undefined;
    verifyAssertion(token, { ...options, request: { method: req.method ?? 'GET', uri: requestUri(req), ...(scopes && { scopes }) } }).then(
      (verified) => {
        req.assertion = verified;
        next();
      },
      (err: unknown) => {
        const code = err instanceof AssertionError ? err.code : 'malformed';
        res.writeHead(401, { 'content-type': 'application/json' }).end(`{"error":"assertion_${code}"}`);
      },
    );
  };
}
