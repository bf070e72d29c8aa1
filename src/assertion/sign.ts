// Signs assertions as JWS compact HS256 with node:crypto's HMAC. The encoded header is
// kept per key; verification (verify.ts) uses jose, an independent implementation, and
// the tests hold the two against each other.
import { createHmac, createSecretKey, randomFillSync, type KeyObject } from 'node:crypto';
import type { AssertionClaims } from './claims.js';

export class AssertionSigner {
  private readonly encodedHeader: string;
  private readonly key: KeyObject;

  constructor(
    readonly kid: string,
    secret: Buffer,
  ) {
    this.encodedHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })).toString('base64url');
    this.key = createSecretKey(secret);
  }

  sign(claims: AssertionClaims): string {
    const signingInput = `${this.encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${signingInput}.${createHmac('sha256', this.key).update(signingInput).digest('base64url')}`;
  }
}

// Random ids come from a pooled buffer: one getrandom call per 256 ids instead of one each.
const ID_BYTES = 16;
const pool = Buffer.alloc(ID_BYTES * 256);
let offset = pool.length;

/** 128 random bits, base64url. */
export function randomId(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  offset += ID_BYTES;
  return pool.toString('base64url', offset - ID_BYTES, offset);
}
