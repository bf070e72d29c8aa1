// A recording gateway to run as a process in a test host:
//   node test/support/recording-gateway.ts --host 127.0.0.1 --port P [--keys-dir D]
// HTTP and WebSocket echo. It prints `{"ready":true,"port":P}` once listening, then one
// JSON line per request or upgrade it received (method, url, rawHeaders). With --keys-dir
// it verifies the assertion bound to that request, as a gateway reached around the
// sidecar must, records the outcome and answers 401 when it fails. It imports no local
// .ts file (Node runs it by type stripping); the verifier comes from the built dist/.
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import type * as verifyModule from '../../src/assertion/verify.js';

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
  const record = (r: GatewayRecord) => process.stdout.write(`${JSON.stringify(r)}\n`);

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void check(req).then((assertion) => {
        record({ kind: 'request', method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, ...(assertion && { assertion }) });
        if (assertion && !assertion.verified) {
          res.writeHead(401, { 'content-type': 'application/json' }).end(`{"error":"assertion_${assertion.error}"}`);
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo ${req.method} ${req.url} ${Buffer.concat(chunks).length}`);
      });
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    void check(req).then((assertion) => {
      record({ kind: 'upgrade', method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, ...(assertion && { assertion }) });
      if (assertion && !assertion.verified) {
        socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(values.port), values.host, resolve));
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port })}\n`);
  const stop = () => {
    for (const c of wss.clients) c.terminate();
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`recording-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
