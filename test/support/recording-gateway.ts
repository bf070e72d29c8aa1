// The recording gateway (harness/upstream.ts) as a process in a test host:
//   node test/support/recording-gateway.ts --host 127.0.0.1 --port P [--keys-dir D]
// HTTP and WebSocket echo. It prints `{"ready":true,"port":P}` once listening, then one
// JSON line per request or upgrade it received (method, url, rawHeaders). With --keys-dir
// it verifies the assertion bound to that request, as a gateway reached around the
// sidecar must, records the outcome and answers 401 when it fails. Node runs it and the
// upstream module by type stripping (hence the .ts import); the verifier comes from dist/.
import type { IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import type * as verifyModule from '../../src/assertion/verify.js';
import { startRecordingUpstream } from '../../harness/upstream.ts';

type VerifyModule = typeof verifyModule;

export interface GatewayRecord {
  kind: 'request' | 'upgrade';
  method: string;
  url: string;
  rawHeaders: string[];
  /** Present when the gateway verifies: the outcome for this request. */
  assertion?: { verified: true; sub: string; htm: string; htu: string; jti: string } | { verified: false; error: string };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'keys-dir': { type: 'string' },
      header: { type: 'string', default: 'x-trusted-proxy-assertion' },
    },
  });
  const keysDir = values['keys-dir'];
  const verifier = keysDir ? ((await import(new URL('../../dist/assertion/verify.js', import.meta.url).href)) as VerifyModule) : undefined;
  const keys = verifier && keysDir ? verifier.keysFromDir(keysDir) : undefined;
  const replayCache = verifier ? new verifier.ReplayCache() : undefined;
  const header = values.header.toLowerCase();

  const check = async (req: IncomingMessage): Promise<GatewayRecord['assertion']> => {
    if (!verifier || !keys) return undefined;
    const token = req.headers[header];
    if (typeof token !== 'string') return { verified: false, error: 'missing' };
    try {
      const c = await verifier.verifyAssertion(token, {
        keys,
        replayCache,
        request: { method: req.method ?? 'GET', uri: verifier.requestUri(req) },
      });
      return { verified: true, sub: c.sub, htm: c.htm, htu: c.htu, jti: c.jti };
    } catch (err) {
      return { verified: false, error: err instanceof verifier.AssertionError ? err.code : 'malformed' };
    }
  };
  const record = (kind: GatewayRecord['kind'], req: IncomingMessage, assertion: GatewayRecord['assertion']) =>
    process.stdout.write(`${JSON.stringify({ kind, method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, ...(assertion && { assertion }) })}\n`);

  const gateway = await startRecordingUpstream(
    (req, res, body) => {
      void check(req).then((assertion) => {
        record('request', req, assertion);
        if (assertion && !assertion.verified) {
          res.writeHead(401, { 'content-type': 'application/json' }).end(`{"error":"assertion_${assertion.error}"}`);
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo ${req.method} ${req.url} ${Buffer.byteLength(body)}`);
      });
    },
    values.host,
    {
      port: Number(values.port),
      // A long run keeps only the last requests in memory; every one is printed.
      keep: 0,
      admitUpgrade: async (req) => {
        const assertion = await check(req);
        record('upgrade', req, assertion);
        return assertion && !assertion.verified ? assertion.error : undefined;
      },
    },
  );
  process.stdout.write(`${JSON.stringify({ ready: true, port: gateway.port })}\n`);
  const stop = () => void gateway.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`recording-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
