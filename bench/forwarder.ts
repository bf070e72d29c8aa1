// Child process: a bare forwarder with no checks at all, the ceiling for the sidecar's
// proxy layer. `proxy-layer` runs the sidecar's own forwarding code and gateway connections; the
// others are the alternatives measured against it (Node's http client, undici's request()).
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent, request as undiciRequest } from 'undici';
import { configSchema } from '../src/config/schema.js';
import { gatewayEndpoint } from '../src/gateway/endpoint.js';
import { relayUpgrade as sidecarUpgrade } from '../src/gateway/upgrade.js';
import { hasBody, PinnedForwarder } from '../src/proxy/forward.js';

const [kind, target] = process.argv.slice(2) as [string, string];
const upstream = configSchema.parse({ upstream: { url: target } }).upstream;
const { hostname, port } = new URL(target);

const server = http.createServer();

function handler(): http.RequestListener {
  if (kind === 'proxy-layer') {
    const forwarder = new PinnedForwarder();
    // One principal: the bare data plane carries no identity (the benchmark sends one user).
    const bounds = {
      endpoint: gatewayEndpoint(target),
      principal: '',
      connectTimeoutMs: upstream.connectTimeoutSeconds * 1000,
      timeoutMs: upstream.timeoutSeconds * 1000,
      bodyStallMs: 30_000,
      maxBodyBytes: 0,
    };
    const failed = (res: http.ServerResponse) => () => (res.headersSent ? res.destroy() : res.writeHead(502).end());
    // WebSockets too, relayed as the sidecar relays them: the floor for the echo benchmark.
    const relaying = { endpoint: gatewayEndpoint(target), connectTimeoutMs: upstream.connectTimeoutSeconds * 1000, timeoutMs: upstream.timeoutSeconds * 1000 };
    server.on('upgrade', (req, socket, head) =>
      sidecarUpgrade(req, socket, head, headersOf(req), relaying, { response: () => undefined, switched: () => undefined, failed: () => socket.destroy() }),
    );
    return (req, res) => forwarder.forward(req, res, headersOf(req), bounds, { response: () => undefined, failed: failed(res) });
  }
  if (kind === 'node-http') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: upstream.maxSockets, maxFreeSockets: 64, scheduling: 'lifo' });
    server.on('upgrade', relayUpgrade);
    return (req, res) => {
      const out = http.request({ agent, host: hostname, port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.rawHeaders);
        up.pipe(res);
      });
      out.on('error', () => res.writeHead(502).end());
      req.pipe(out);
    };
  }
  if (kind === 'undici') {
    const dispatcher = new Agent({ connections: upstream.maxSockets, pipelining: 1 });
    return (req, res) => {
      undiciRequest(target + req.url, { dispatcher, method: req.method as 'GET', headers: req.headers, body: hasBody(req) ? req : null }).then(
        (up) => {
          res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders);
          up.body.pipe(res);
        },
        () => res.writeHead(502).end(),
      );
    };
  }
  throw new Error(`unknown forwarder ${kind}`);
}

/** The least a Node relay can hold per WebSocket: the upgrade passed on, then two pipes. */
function relayUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const out = http.request({ host: hostname, port, path: req.url, headers: req.headers });
  out.on('upgrade', (res, up: Socket, upHead: Buffer) => {
    let lines = 'HTTP/1.1 101 Switching Protocols\r\n';
    for (let i = 0; i < res.rawHeaders.length; i += 2) lines += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
    socket.write(`${lines}\r\n`);
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) up.write(head);
    up.pipe(socket).pipe(up);
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  out.on('error', () => socket.destroy());
  out.end();
}

/** The request's header lines minus its own hop's, flat and lower-case as the sidecar's header pass leaves them (no checks). */
function headersOf(req: http.IncomingMessage): string[] {
  const upgrading = req.headers.upgrade !== undefined;
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'keep-alive' || name === 'transfer-encoding') continue;
    if ((name === 'connection' || name === 'upgrade') && !upgrading) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

server.on('request', handler());
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }));
process.once('SIGTERM', () => process.exit(0));
