// The data-plane listener: the only way into the pod. Strict parsing, bounded headers,
// connections and timeouts; malformed requests get a JSON error instead of Node's bare 400.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import type { ListenConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestHandler } from '../proxy/handler.js';
import { isMidResponse, markClosing } from '../proxy/in-flight.js';
import { endAndRelease, rawAnswer } from '../proxy/respond.js';
import { httpsModule } from '../platform/tls-modules.js';

/** Once draining, every response closes its connection, so clients move to another pod. */
export interface DrainState {
  readonly draining: boolean;
}

export function createDataPlane(listen: ListenConfig, handler: RequestHandler, metrics: Metrics, drain: DrainState = { draining: false }): http.Server {
  const options: http.ServerOptions = {
    maxHeaderSize: listen.maxHeaderBytes,
    // Node enforces headersTimeout and requestTimeout only at this interval (30 s by
    // default), which let a slow-headers client hold a socket up to 30 s past the limit.
    connectionsCheckingInterval: 1000,
    requireHostHeader: true,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  };
  const server = listen.certFile ? httpsModule().createServer({ ...options, ...tlsOptions(listen) }) : http.createServer(options);
  applyListenLimits(server, listen);
  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (drain.draining) res.shouldKeepAlive = false;
    handler.onRequest(req, res);
  };
  server.on('request', serve);
  // Node writes a pipelined request's 100 Continue into its response while that waits for
  // the ones before it, and the response's own head, written later, goes in front of it:
  // the client would read the 100 after the final status, inside the body. The 100 goes out
  // when the response gets the socket (Node hands it over once the responses before it are
  // done: one listener, however many requests are pipelined), and not at all once the
  // final answer has begun.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (res.socket !== null) res.writeContinue();
    else res.once('socket', () => !res.headersSent && res.writeContinue());
    serve(req, res);
  });
  server.on('upgrade', (req, socket, head) => handler.onUpgrade(req, socket, head));
  server.on('drop', () => metrics.connectionsDropped.inc({ port: 'data', reason: 'max_connections' }));
  metrics.observeConnections('data', server);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = status === 431 ? 'too_many_headers' : status === 408 ? 'request_timeout' : 'bad_request';
    metrics.decisions.inc({ mode: 'inline', result: 'refused', reason });
    // A response already under way cannot be followed by another: the connection ends, and
    // the upstream exchanges on it with it. Otherwise the answer goes out now, and responses
    // not yet begun on this broken connection are abandoned, as Node itself would.
    // Requests parsed before the error are answered by nobody now: none may be forwarded.
    markClosing(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || isMidResponse(socket)) {
      socket.destroy();
      return;
    }
    endAndRelease(socket, rawAnswer(status, `{"error":"${reason}"}`));
  });
  return server;
}

/**
 * The server's certificate, and with a client CA, a request for the client's: the TLS
 * handshake lets a client without one (or with one the CA did not sign) through, and the
 * source stage refuses it with a reason, rather than a bare handshake failure.
 */
function tlsOptions(listen: ListenConfig): https.ServerOptions {
  // The HTTP timeouts start after the handshake, and Node's own bound on it is 120 s: a
  // client that connects and never sends its hello would hold the connection that long.
  // Node reads this only when the server is made, so a reload does not change it.
  const handshakeTimeout = listen.headersTimeoutSeconds * 1000;
  const server = { cert: readFileSync(listen.certFile), key: readFileSync(listen.keyFile), handshakeTimeout };
  if (!listen.clientCAFile) return server;
  return { ...server, ca: readFileSync(listen.clientCAFile), requestCert: true, rejectUnauthorized: false };
}

/** The limits a running listener can change, applied at start and on every config reload. */
export function applyListenLimits(server: http.Server, listen: ListenConfig): void {
  server.headersTimeout = listen.headersTimeoutSeconds * 1000;
  server.requestTimeout = listen.requestTimeoutSeconds * 1000;
  server.keepAliveTimeout = listen.keepAliveTimeoutSeconds * 1000;
  // One over the limit, so that exceeding it is seen (and refused) rather than truncated.
  server.maxHeadersCount = listen.maxHeaderCount + 1;
  server.maxConnections = listen.maxConnections > 0 ? listen.maxConnections : defaultMaxConnections(listen);
}

/**
 * Without a configured maximum: as many client connections as both the descriptor limit and
 * the memory limit leave room for. Past it new connections are closed at accept, so a flood
 * can neither take the descriptors the admin port and the gateway need nor take the process
 * past its memory limit, where the kernel would end it and every connection with it.
 */
export function defaultMaxConnections(listen: Pick<ListenConfig, 'maxHeaderBytes'>): number {
  return Math.min(connectionsWithinDescriptorLimit(), connectionsWithinMemoryLimit(listen.maxHeaderBytes));
}

/**
 * (soft limit − 256) / 2: each client connection with room for its upstream one, and a
 * reserve for the admin port, the config and key files and the Kubernetes client.
 */
export function connectionsWithinDescriptorLimit(limits = readLimits()): number {
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  if (soft === undefined || soft === 'unlimited') return Infinity;
  return Math.max(1, Math.floor((Number(soft) - DESCRIPTOR_RESERVE) / 2));
}

const DESCRIPTOR_RESERVE = 256;

/**
 * The memory limit (the container's cgroup, else the machine's) less a reserve for the
 * sidecar itself, over what one connection can be made to hold: about 21 KB of sockets,
 * parser and buffers (24 KiB allowed), and a request head up to maxHeaderBytes that a slow
 * client never finishes (measured: 36.5 KB of RSS each for 3,000 connections holding 15 KB
 * heads; docs/configuration.md). Small limits keep at least a quarter for connections.
 */
export function connectionsWithinMemoryLimit(maxHeaderBytes: number, memoryBytes = memoryLimit()): number {
  const forConnections = Math.max(memoryBytes - MEMORY_RESERVE_BYTES, memoryBytes / 4);
  return Math.max(1, Math.floor(forConnections / (CONNECTION_BYTES + maxHeaderBytes)));
}

// The chart's values measure about 150 MB idle with discovery on.
const MEMORY_RESERVE_BYTES = 192 * 1024 * 1024;
const CONNECTION_BYTES = 24 * 1024;

/** process.constrainedMemory() is 0 or 2^64 when no cgroup limit is set. */
function memoryLimit(): number {
  const constrained = process.constrainedMemory();
  const total = totalmem();
  return constrained > 0 && constrained < total ? constrained : total;
}

function readLimits(): string {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return '';
  }
}
