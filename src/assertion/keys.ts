// Signing keys live as files in one folder: the file name is the key id. With HS256 the
// file's exact bytes are the shared key; with EdDSA (Ed25519) or ES256 (P-256) the file
// holds a private key, PEM (PKCS #8 or SEC 1) or a JWK, and only its public half leaves
// the sidecar, as a JWK Set (publicKeySet). A Kubernetes Secret mount (dot-prefixed
// `..data` links) fits as is.
import { createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Algorithm } from '../config/schema.js';

export const MIN_KEY_BYTES = 32;
const KID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface KeyRing {
  readonly algorithm: Algorithm;
  /** Key id → the signing key: a secret (HS256) or a private key. */
  readonly keys: ReadonlyMap<string, KeyObject>;
  /** The key that signs; undefined when none can be chosen (then nothing is signed). */
  readonly activeKeyId: string | undefined;
  readonly problems: readonly string[];
}

export function loadKeyRing(dir: string, activeKeyId: string, algorithm: Algorithm = 'HS256'): KeyRing {
  const keys = new Map<string, KeyObject>();
  const problems: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort();
  } catch (err) {
    return { algorithm, keys, activeKeyId: undefined, problems: [`keysDir ${dir}: cannot read (${(err as NodeJS.ErrnoException).code})`] };
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
      if (!KID.test(name)) {
        problems.push(`key file ${name}: name is not a valid key id`);
        continue;
      }
      const key = readKey(readFileSync(path), algorithm);
      if (typeof key === 'string') problems.push(`key ${name}: ${key}`);
      else keys.set(name, key);
    } catch (err) {
      problems.push(`key ${name}: cannot read (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  let active: string | undefined;
  if (activeKeyId) {
    if (keys.has(activeKeyId)) active = activeKeyId;
    else problems.push(`activeKeyId ${activeKeyId}: no valid key file of that name in ${dir}`);
  } else if (keys.size === 1) {
    active = [...keys.keys()][0];
  } else if (keys.size === 0) {
    problems.push(`keysDir ${dir}: no valid key`);
  } else {
    problems.push(`keysDir ${dir}: ${keys.size} keys and no activeKeyId to choose one`);
  }
  return { algorithm, keys, activeKeyId: active, problems };
}

/** The key a file holds for `algorithm`, or why it holds none. */
function readKey(bytes: Buffer, algorithm: Algorithm): KeyObject | string {
  if (algorithm === 'HS256') {
    if (bytes.length < MIN_KEY_BYTES) return `${bytes.length} bytes, at least ${MIN_KEY_BYTES} needed`;
    // Its bytes would make a valid HMAC key, but a key pair's file here is a mistake (an
    // algorithm changed back without its folder), and the private key would be a shared one.
    if (bytes.subarray(0, 11).toString('latin1') === '-----BEGIN ') return 'a PEM key, not an HS256 secret (is assertion.algorithm right?)';
    return createSecretKey(bytes);
  }
  let key: KeyObject;
  try {
    const text = bytes.toString('utf8');
    key = text.trimStart().startsWith('{') ? createPrivateKey({ key: JSON.parse(text) as JsonWebKey, format: 'jwk' }) : createPrivateKey(text);
  } catch {
    return `not a private key in PEM or JWK form (${algorithm} needs one)`;
  }
  const kind = keyAlgorithm(key);
  return kind === algorithm ? key : `the key is ${describe(key)}, not one for ${algorithm}`;
}

/** The JWS algorithm a key object signs with, if it is one of ours. */
export function keyAlgorithm(key: KeyObject): Algorithm | undefined {
  if (key.type === 'secret') return 'HS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

function describe(key: KeyObject): string {
  return key.type === 'secret' ? 'secret' : `${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}`;
}

export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg: Algorithm;
  use: 'sig';
}

/** The public halves of every key in the ring, as a JWK Set; empty for HS256 (nothing is public). */
export function publicKeySet(ring: KeyRing): { keys: PublicJwk[] } {
  if (ring.algorithm === 'HS256') return { keys: [] };
  return {
    keys: [...ring.keys].map(([kid, key]) => ({ ...createPublicKey(key).export({ format: 'jwk' }), kid, alg: ring.algorithm, use: 'sig' as const })),
  };
}

/** A new key file's contents: 32 random bytes for HS256, else a PKCS #8 PEM private key. */
export function newKeyFile(algorithm: Algorithm): Buffer {
  if (algorithm === 'HS256') return randomBytes(MIN_KEY_BYTES);
  const { privateKey } = algorithm === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }));
}
