// A gateway for the chaos and exhaustion suites, in the test process: it answers at once,
// holds requests until they are abandoned or released, streams 64 MiB, reads uploads,
// and accepts WebSockets that stay quiet or flood the client. It remembers what it holds.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

const MIB = Buffer.alloc(1 << 20, 'x');

export interface ChaosGateway {
  url: string;
  /** Requests held unanswered right now, by path. */
  readonly held: Map<string, ServerResponse>;
  /** The most requests held at once since the last reset. */
  peakHeld: number;
  /** Paths whose exchange the sidecar ended before the answer was complete. */
  readonly abandoned: string[];
  /** Open WebSockets right now. */
  readonly upgraded: Set<Duplex>;
  releaseAll(): void;
  close(): Promise<void>;
}

export async function startChaosGateway(): Promise<ChaosGateway> {
  const held = new Map<string, ServerResponse>();
  const abandoned: string[] = [];
  const upgraded = new Set<Duplex>();
  const gateway: ChaosGateway = {
    url: '',
    held,
    peakHeld: 0,
    abandoned,
    upgraded,
    releaseAll: () => {
      for (const res of [...held.values()]) res.end('released');
    },
    close: async () => {
      for (const socket of upgraded) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    res.once('close', () => {
      if (!res.writableFinished) abandoned.push(path);
      if (held.get(path) === res) held.delete(path);
    });
    if (path.startsWith('/hold/')) {
      req.resume();
      held.set(path, res);
      gateway.peakHeld = Math.max(gateway.peakHeld, held.size);
      return;
    }
    if (path === '/big') {
      let left = 64;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(MIB)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.writeHead(200, { 'content-length': String(64 << 20) });
      return pump();
    }
    let length = 0;
    req.on('data', (c: Buffer) => (length += c.length));
    req.on('end', () => res.end(`got ${length}`));
  });
  server.keepAliveTimeout = 2000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => upgraded.delete(socket));
    // Ends its side when the client does, as a WebSocket server closes on FIN.
    socket.once('end', () => socket.end());
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
    socket.resume();
    if (req.url !== '/ws-flood') return;
    // Binary frames of 64 KiB, 1,024 of them, as fast as the client reads.
    const frame = Buffer.concat([Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]), Buffer.alloc(65536, 'y')]);
    let left = 1024;
    const pump = () => {
      while (left > 0 && !socket.destroyed) {
        left--;
        if (!socket.write(frame)) return void socket.once('drain', pump);
      }
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gateway.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return gateway;
}
