// Signs assertions as JWS compact HS256. Built on node:crypto rather than a JWT library:
// on the hot path it keeps the encoded header per key and computes HMAC-SHA256 (RFC 2104)
// with two one-shot hashes over precomputed key blocks, which spares a native Hmac object
// (and its cleanup by the garbage collector) per request. Verification (verify.ts) uses
// jose, an independent implementation, and the tests hold the two against each other.
import { hash, randomFillSync } from 'node:crypto';
import type { AssertionClaims } from './claims.js';

/** SHA-256's block size: HMAC pads (or first hashes) the key to one block. */
const BLOCK = 64;
const DIGEST = 32;

export class AssertionSigner {
  private readonly encodedHeader: string;
  /** Key ⊕ ipad, then the signing input written after it, grown as inputs need. */
  private inner: Buffer;
  /** Key ⊕ opad, then the inner digest. */
  private readonly outer = Buffer.alloc(BLOCK + DIGEST);

  constructor(
    readonly kid: string,
    secret: Buffer,
  ) {
    this.encodedHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })).toString('base64url');
    const key = Buffer.alloc(BLOCK);
    (secret.length > BLOCK ? hash('sha256', secret, 'buffer') : secret).copy(key);
    this.inner = Buffer.alloc(1024);
    for (let i = 0; i < BLOCK; i++) {
      this.inner[i] = key[i]! ^ 0x36;
      this.outer[i] = key[i]! ^ 0x5c;
    }
  }

  sign(claims: AssertionClaims): string {
    const signingInput = `${this.encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${signingInput}.${this.mac(signingInput)}`;
  }

  /** HMAC-SHA256 of an ASCII string (a JWS signing input is base64url and dots), base64url. */
  private mac(input: string): string {
    if (BLOCK + input.length > this.inner.length) {
      const grown = Buffer.alloc(2 * (BLOCK + input.length));
      this.inner.copy(grown, 0, 0, BLOCK);
      this.inner = grown;
    }
    const end = BLOCK + this.inner.write(input, BLOCK, 'latin1');
    hash('sha256', this.inner.subarray(0, end), 'buffer').copy(this.outer, BLOCK);
    return hash('sha256', this.outer, 'base64url');
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
