// A recording upstream: a real HTTP (and WebSocket) server on loopback that remembers
// exactly what arrived, raw header lines included. Tests assert on what it received.
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  body: string;
}

export interface RecordingUpstream {
  url: string;
  port: number;
  received: Received[];
  /** WebSocket upgrade requests that reached the upstream. */
  upgrades: Received[];
  /** Header values by lower-case name, every line kept apart. */
  valuesOf(r: Received, name: string): string[];
  close(): Promise<void>;
}

export async function startRecordingUpstream(
  respond: (req: IncomingMessage, res: http.ServerResponse, body: string) => void = (_req, res) =>
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'),
  host = '127.0.0.1',
  /**
   * keep: remember only the last N requests and upgrades (long load runs); tls: serve HTTPS
   * (and WebSockets over it) with this certificate.
   */
  options: { keep?: number; tls?: { certFile: string; keyFile: string } } = {},
): Promise<RecordingUpstream> {
  const received: Received[] = [];
  const upgrades: Received[] = [];
  const record = (list: Received[], r: Received) => {
    list.push(r);
    if (options.keep !== undefined && list.length > options.keep) list.shift();
  };
  const onRequest = (req: IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      record(received, { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, headers: req.headers, body });
      respond(req, res, body);
    });
  };
  const server = options.tls
    ? https.createServer({ cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }, onRequest)
    : http.createServer(onRequest);
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    record(upgrades, { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, headers: req.headers, body: '' });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    port,
    received,
    upgrades,
    valuesOf: (r, name) => {
      const out: string[] = [];
      for (let i = 0; i < r.rawHeaders.length; i += 2) {
        if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
      }
      return out;
    },
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
