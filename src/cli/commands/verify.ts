import { ALGORITHMS, type Algorithm } from '../../config/schema.js';
import { AssertionError, keysFromDir, verifyAssertion } from '../../assertion/verify.js';
import { UsageError, type Command } from '../command.js';

export const verify: Command = {
  name: 'verify',
  usage: `trusted-proxy-sidecar verify (--keys-dir DIR [--algorithm A] | --jwks FILE|URL) [--issuer I] [--audience A] [--method M --uri U] TOKEN

Verifies with the keys of a sidecar key folder (HS256 by default; EdDSA or ES256 with
--algorithm) or with a JWK Set (a file, or the admin port's /.well-known/jwks.json).
With --method and --uri, the token must be bound to that request: --uri is
proto://host/path?query, the target whole as the gateway received it.
Prints the verified claims as JSON and exits 0, or prints the reason and exits 1.`,
  options: {
    'keys-dir': { type: 'string' },
    algorithm: { type: 'string' },
    jwks: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    method: { type: 'string' },
    uri: { type: 'string' },
  },
  allowPositionals: true,
  async run({ values, positionals }) {
    const dir = values['keys-dir'] as string | undefined;
    const jwks = values.jwks as string | undefined;
    if ((dir === undefined) === (jwks === undefined)) throw new UsageError('give one of --keys-dir and --jwks');
    const algorithm = (values.algorithm as string | undefined) ?? 'HS256';
    if (!(ALGORITHMS as readonly string[]).includes(algorithm)) throw new UsageError(`--algorithm must be one of ${ALGORITHMS.join(', ')}`);
    const token = positionals[0];
    if (!token || positionals.length > 1) throw new UsageError('exactly one TOKEN is required');
    const method = values.method as string | undefined;
    const uri = values.uri as string | undefined;
    if ((method === undefined) !== (uri === undefined)) throw new UsageError('--method and --uri go together');
    try {
      const claims = await verifyAssertion(token, {
        ...(dir !== undefined ? { keys: keysFromDir(dir, algorithm as Algorithm) } : { jwks }),
        issuer: values.issuer as string | undefined,
        audience: values.audience as string | undefined,
        ...(method !== undefined && uri !== undefined && { request: { method, uri } }),
      });
      process.stdout.write(`${JSON.stringify(claims, null, 2)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof AssertionError)) throw err;
      process.stderr.write(`not valid: ${err.code}: ${err.message}\n`);
      return 1;
    }
  },
};
