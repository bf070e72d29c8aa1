// The verifier gateways use (`trusted-proxy-sidecar/verify`). It is built on jose, pins
// HS256, and checks signature (constant time), issuer, audience, time, and, given the
// request, that the assertion was minted for this method and target.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecretKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { AssertionClaims } from './claims.js';
import { targetUri } from './claims.js';
import { loadKeyRing } from './keys.js';

export type AssertionErrorCode =
  | 'malformed'
  | 'algorithm'
  | 'unknown_key'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issuer'
  | 'audience'
  | 'claims'
  | 'method'
  | 'target'
  | 'replayed';

export class AssertionError extends Error {
  constructor(
    readonly code: AssertionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AssertionError';
  }
}

/** Remembers seen `jti` values until their assertion expires. */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries = 100_000) {}

  /** False when this id was already used. */
  claim(jti: string, exp: number, nowSeconds: number): boolean {
    if (this.seen.size >= this.maxEntries) this.evict(nowSeconds);
    if (this.seen.has(jti)) return false;
    this.seen.set(jti, exp);
    return true;
  }

  private evict(nowSeconds: number): void {
    for (const [jti, exp] of this.seen) if (exp < nowSeconds) this.seen.delete(jti);
    // Still full: forget the oldest entries (insertion order) rather than grow without bound.
    for (const jti of this.seen.keys()) {
      if (this.seen.size < this.maxEntries) break;
      this.seen.delete(jti);
    }
  }
}

export interface VerifyOptions {
  /** Key id → key bytes; or use `keysFromDir`. */
  keys: ReadonlyMap<string, Uint8Array>;
  issuer?: string;
  audience?: string;
  clockToleranceSeconds?: number;
  /** When given, `htm` and `htu` must match this request. */
  request?: { method: string; uri: string };
  replayCache?: ReplayCache;
  now?: () => number;
}

export type VerifiedAssertion = AssertionClaims & { kid: string };

export function keysFromDir(dir: string): Map<string, Uint8Array> {
  return new Map(loadKeyRing(dir, '').keys);
}

const keyObjects = new WeakMap<Uint8Array, KeyObject>();
function keyObject(bytes: Uint8Array): KeyObject {
  let k = keyObjects.get(bytes);
  if (!k) keyObjects.set(bytes, (k = createSecretKey(bytes)));
  return k;
}

export async function verifyAssertion(token: string, options: VerifyOptions): Promise<VerifiedAssertion> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new AssertionError('malformed', 'not a JWS compact token');
  }
  if (header.alg !== 'HS256') throw new AssertionError('algorithm', `algorithm ${String(header.alg)} is not HS256`);
  if (typeof header.kid !== 'string') throw new AssertionError('unknown_key', 'no kid in header');
  const key = options.keys.get(header.kid);
  if (!key) throw new AssertionError('unknown_key', `no key ${header.kid}`);
  const nowSeconds = Math.floor((options.now?.() ?? Date.now()) / 1000);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keyObject(key), {
      algorithms: ['HS256'],
      typ: 'JWT',
      issuer: options.issuer ?? 'trusted-proxy-sidecar',
      audience: options.audience ?? 'gateway',
      clockTolerance: options.clockToleranceSeconds ?? 5,
      currentDate: new Date(nowSeconds * 1000),
      requiredClaims: ['sub', 'iat', 'nbf', 'exp', 'jti', 'htm', 'htu'],
    }));
  } catch (err) {
    throw mapJoseError(err);
  }
  const claims = payload as unknown as AssertionClaims;
  if (typeof claims.sub !== 'string' || typeof claims.jti !== 'string' || !Array.isArray(claims.groups)) {
    throw new AssertionError('claims', 'claims of the wrong type');
  }
  if (options.request) {
    if (claims.htm !== options.request.method) throw new AssertionError('method', 'assertion minted for another method');
    if (claims.htu !== options.request.uri) throw new AssertionError('target', 'assertion minted for another target');
  }
  if (options.replayCache && !options.replayCache.claim(claims.jti, claims.exp, nowSeconds)) {
    throw new AssertionError('replayed', 'assertion already used');
  }
  return { ...claims, kid: header.kid };
}

function mapJoseError(err: unknown): AssertionError {
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

/** `proto://host/path` of a request as the sidecar forwarded it (its X-Forwarded-* are its own). */
export function requestUri(req: IncomingMessage): string {
  const proto = firstHeader(req, 'x-forwarded-proto') ?? 'http';
  const host = firstHeader(req, 'x-forwarded-host') ?? req.headers.host ?? '';
  const path = (req.url ?? '/').split('?')[0]!;
  return targetUri(proto, host, path);
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface MiddlewareOptions extends Omit<VerifyOptions, 'request'> {
  header?: string;
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
    verifyAssertion(token, { ...options, request: { method: req.method ?? 'GET', uri: requestUri(req) } }).then(
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
