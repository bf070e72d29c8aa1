// HMAC keys live as files in one folder: the file name is the key id, the file's exact
// bytes are the key. A Kubernetes Secret mount (dot-prefixed `..data` links) fits as is.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const MIN_KEY_BYTES = 32;
const KID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface KeyRing {
  readonly keys: ReadonlyMap<string, Buffer>;
  /** The key that signs; undefined when none can be chosen (then nothing is signed). */
  readonly activeKeyId: string | undefined;
  readonly problems: readonly string[];
}

export function loadKeyRing(dir: string, activeKeyId: string): KeyRing {
  const keys = new Map<string, Buffer>();
  const problems: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    return { keys, activeKeyId: undefined, problems: [`keysDir ${dir}: cannot read (${(err as NodeJS.ErrnoException).code})`] };
  }
  for (const name of names) {
    const path = join(dir, name);
    try {
      if (!statSync(path).isFile()) continue;
      if (!KID.test(name)) {
        problems.push(`key file ${name}: name is not a valid key id`);
        continue;
      }
      const bytes = readFileSync(path);
      if (bytes.length < MIN_KEY_BYTES) {
        problems.push(`key ${name}: ${bytes.length} bytes, at least ${MIN_KEY_BYTES} needed`);
        continue;
      }
      keys.set(name, bytes);
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
  return { keys, activeKeyId: active, problems };
}

export function newKeyBytes(): Buffer {
  return randomBytes(MIN_KEY_BYTES);
}
