// Signs assertions as JWS compact tokens with node:crypto: HS256 (HMAC-SHA256 over a
// shared key), EdDSA (Ed25519) or ES256 (ECDSA P-256, signature as r‖s). The encoded
// header is kept per key; verification (verify.ts) uses jose, an independent
// implementation, and the tests hold the two against each other.
import { createHmac, createSecretKey, randomFillSync, sign, type KeyObject } from 'node:crypto';
import type { AssertionClaims } from './claims.js';
import { keyAlgorithm } from './keys.js';
import type { Algorithm } from '../config/schema.js';

export class AssertionSigner {
  readonly algorithm: Algorithm;
  private readonly encodedHeader: string;
  private readonly key: KeyObject;

  /** A Buffer is an HS256 secret; a key object signs with the algorithm of its kind. */
  constructor(
    readonly kid: string,
    key: Buffer | KeyObject,
  ) {
    this.key = Buffer.isBuffer(key) ? createSecretKey(key) : key;
    const algorithm = keyAlgorithm(this.key);
    if (algorithm === undefined) throw new Error(`key ${kid}: not a key for HS256, EdDSA or ES256`);
    this.algorithm = algorithm;
    this.encodedHeader = Buffer.from(JSON.stringify({ alg: algorithm, typ: 'JWT', kid })).toString('base64url');
  }

  sign(claims: AssertionClaims): string {
    const signingInput = `${this.encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${signingInput}.${this.signature(signingInput)}`;
  }

  private signature(input: string): string {
    switch (this.algorithm) {
      case 'HS256':
        return createHmac('sha256', this.key).update(input).digest('base64url');
      case 'EdDSA':
        return sign(null, Buffer.from(input, 'latin1'), this.key).toString('base64url');
      case 'ES256':
        return sign('sha256', Buffer.from(input, 'latin1'), { key: this.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    }
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
