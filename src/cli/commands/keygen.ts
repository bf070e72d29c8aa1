import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyFile } from '../../assertion/keys.js';
import { ALGORITHMS, type Algorithm } from '../../config/schema.js';
import { requireString, UsageError, type Command } from '../command.js';

export const keygen: Command = {
  name: 'keygen',
  usage: `trusted-proxy-sidecar keygen --keys-dir DIR --kid NAME [--algorithm HS256|EdDSA|ES256]

Writes a new signing key to DIR/NAME (mode 0400): 32 random bytes for HS256 (the
default), a PKCS #8 PEM private key for EdDSA (Ed25519) or ES256 (P-256). The file name
is the key id. Refuses to overwrite an existing key.`,
  options: { 'keys-dir': { type: 'string' }, kid: { type: 'string' }, algorithm: { type: 'string' } },
  async run({ values }) {
    const dir = requireString(values, 'keys-dir');
    const kid = requireString(values, 'kid');
    const algorithm = (values.algorithm as string | undefined) ?? 'HS256';
    if (!(ALGORITHMS as readonly string[]).includes(algorithm)) throw new UsageError(`--algorithm must be one of ${ALGORITHMS.join(', ')}`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(kid)) throw new UsageError('--kid must be letters, digits, . _ -');
    const path = join(dir, kid);
    if (existsSync(path)) throw new UsageError(`${path} exists; choose a new key id`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(path, newKeyFile(algorithm as Algorithm), { mode: 0o400, flag: 'wx' });
    process.stdout.write(`${path}\n`);
    return 0;
  },
};
