import { AssertionError, keysFromDir, verifyAssertion } from '../../assertion/verify.js';
import { requireString, UsageError, type Command } from '../command.js';

export const verify: Command = {
  name: 'verify',
  usage: `trusted-proxy-sidecar verify --keys-dir DIR [--issuer I] [--audience A] [--method M --uri U] TOKEN

Prints the verified claims as JSON and exits 0, or prints the reason and exits 1.`,
  options: {
    'keys-dir': { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    method: { type: 'string' },
    uri: { type: 'string' },
  },
  allowPositionals: true,
  async run({ values, positionals }) {
    const dir = requireString(values, 'keys-dir');
    const token = positionals[0];
    if (!token || positionals.length > 1) throw new UsageError('exactly one TOKEN is required');
    const method = values.method as string | undefined;
    const uri = values.uri as string | undefined;
    if ((method === undefined) !== (uri === undefined)) throw new UsageError('--method and --uri go together');
    try {
      const claims = await verifyAssertion(token, {
        keys: keysFromDir(dir),
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
