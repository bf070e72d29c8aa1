// The tests' and the benchmark's one gateway: a real HTTP (and WebSocket) server on
// loopback that remembers exactly what arrived, raw header lines included, and answers as
// `respond` says. A few paths are scripted for the suites that attack the connection:
// `/hold/...` is held unanswered (its body not read) until releaseAll() or the client gives
// up, `/big` streams 64 MiB, and with `websockets: 'raw'` every upgrade gets a 101 and a
// quiet socket (`/ws-flood`: 1,024 frames of 64 KiB, as fast as the client reads) instead of
// the `ws` echo server, which would refuse the handshakes the attacks send.
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';

const MIB = Buffer.alloc(1 << 20, 'x');

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
  /** Requests under /hold/ held unanswered right now, by path. */
  readonly held: Map<string, ServerResponse>;
  /** The most requests held at once since the test last set it to 0. */
  peakHeld: number;
  /** Paths whose answer the client gave up on before it was complete. */
  readonly abandoned: string[];
  /** Raw WebSockets open right now (`websockets: 'raw'`). */
  readonly upgraded: Set<Duplex>;
  /** Answers every held request. */
  releaseAll(): void;
  /** Header values by lower-case name, every line kept apart. */
  valuesOf(r: Received, name: string): string[];
  close(): Promise<void>;
}

/** Answers with the length of the body it read: `got N` (the attack suites check uploads by it). */
export function answerWithLength(_req: IncomingMessage, res: ServerResponse, body: string): void {
  // end() with the body and no head written yet: Content-Length framing, so the answer ends with the text.
  res.setHeader('content-type', 'text/plain');
  res.end(`got ${Buffer.byteLength(body)}`);
}

export async function startRecordingUpstream(
  respond: (req: IncomingMessage, res: http.ServerResponse, body: string) => void = (_req, res) =>
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'),
  host = '127.0.0.1',
  /**
   * keep: remember only the last N requests and upgrades (long load runs); tls: serve HTTPS
   * (and WebSockets over it) with this certificate; websockets: the `ws` echo server, or raw
   * (above); keepAliveTimeoutMs: how long an idle connection is kept (Node's 5 s otherwise).
   */
  options: {
    keep?: number;
    tls?: { certFile: string; keyFile: string };
    websockets?: 'echo' | 'raw';
    keepAliveTimeoutMs?: number;
    /** The port to listen on (a free one by default). */
    port?: number;
    /** Decides an upgrade before it is switched: undefined switches it, anything else answers 401. */
    admitUpgrade?: (req: IncomingMessage) => Promise<string | undefined>;
  } = {},
): Promise<RecordingUpstream> {
  const received: Received[] = [];
  const upgrades: Received[] = [];
  const held = new Map<string, ServerResponse>();
  const abandoned: string[] = [];
  const upgraded = new Set<Duplex>();
  const record = (list: Received[], r: Received) => {
    list.push(r);
    if (options.keep !== undefined && list.length > options.keep) list.shift();
  };
  const onRequest = (req: IncomingMessage, res: http.ServerResponse) => {
    const path = req.url ?? '/';
    res.once('close', () => {
      if (!res.writableFinished) abandoned.push(path);
      if (held.get(path) === res) held.delete(path);
    });
    if (path.startsWith('/hold/')) {
      record(received, { method: req.method!, url: path, rawHeaders: req.rawHeaders, headers: req.headers, body: '' });
      req.resume();
      held.set(path, res);
      upstream.peakHeld = Math.max(upstream.peakHeld, held.size);
      return;
    }
    if (path === '/big') {
      record(received, { method: req.method!, url: path, rawHeaders: req.rawHeaders, headers: req.headers, body: '' });
      req.resume();
      return streamBig(res);
    }
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
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    record(upgrades, { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, headers: req.headers, body: '' });
    if (options.websockets === 'raw') return rawWebSocket(req, socket, upgraded);
    const echo = () =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    if (options.admitUpgrade === undefined) return echo();
    // A client may reset while the upgrade is decided.
    socket.on('error', () => undefined);
    void options
      .admitUpgrade(req)
      .then((refusal) => (refusal === undefined ? echo() : socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(options.port ?? 0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const upstream: RecordingUpstream = {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    port,
    received,
    upgrades,
    held,
    peakHeld: 0,
    abandoned,
    upgraded,
    releaseAll: () => {
      for (const res of [...held.values()]) res.end('released');
    },
    valuesOf: (r, name) => {
      const out: string[] = [];
      for (let i = 0; i < r.rawHeaders.length; i += 2) {
        if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
      }
      return out;
    },
    close: async () => {
      for (const c of wss.clients) c.terminate();
      for (const socket of upgraded) socket.destroy();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return upstream;
}

function streamBig(res: ServerResponse): void {
  let left = 64;
  const pump = () => {
    while (left > 0) {
      left--;
      if (!res.write(MIB)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.writeHead(200, { 'content-length': String(64 << 20) });
  pump();
}

/** Any upgrade switched at once, the socket kept quiet (or flooding, for /ws-flood); ends its side when the client does. */
function rawWebSocket(req: IncomingMessage, socket: Duplex, upgraded: Set<Duplex>): void {
  upgraded.add(socket);
  socket.on('error', () => undefined);
  socket.once('close', () => upgraded.delete(socket));
  socket.once('end', () => socket.end());
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
  socket.resume();
  if (req.url !== '/ws-flood') return;
  const frame = Buffer.concat([Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]), Buffer.alloc(65536, 'y')]);
  let left = 1024;
  const pump = () => {
    while (left > 0 && !socket.destroyed) {
      left--;
      if (!socket.write(frame)) return void socket.once('drain', pump);
    }
  };
  pump();
}
