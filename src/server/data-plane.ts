// The data-plane listener: the only way into the pod. Strict parsing, bounded headers
// and timeouts; malformed requests get a JSON error instead of Node's bare 400.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { ListenConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestHandler } from '../proxy/handler.js';

export function createDataPlane(listen: ListenConfig, handler: RequestHandler, metrics: Metrics): http.Server {
  const options: http.ServerOptions = {
    maxHeaderSize: listen.maxHeaderBytes,
    // Node enforces headersTimeout and requestTimeout only at this interval (30 s by
    // default), which let a slow-headers client hold a socket up to 30 s past the limit.
    connectionsCheckingInterval: 1000,
    requireHostHeader: true,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  };
  const server = listen.certFile
    ? https.createServer({ ...options, cert: readFileSync(listen.certFile), key: readFileSync(listen.keyFile) })
    : http.createServer(options);
  applyListenLimits(server, listen);
  server.on('request', (req, res) => handler.onRequest(req, res));
  server.on('upgrade', (req, socket, head) => handler.onUpgrade(req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    metrics.decisions.inc({ mode: 'inline', result: 'refused', reason: status === 431 ? 'too_many_headers' : 'bad_request' });
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const body = `{"error":"${status === 431 ? 'too_many_headers' : 'bad_request'}"}`;
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}

/** The limits a running listener can change, applied at start and on every config reload. */
export function applyListenLimits(server: http.Server, listen: ListenConfig): void {
  server.headersTimeout = listen.headersTimeoutSeconds * 1000;
  server.requestTimeout = listen.requestTimeoutSeconds * 1000;
  server.keepAliveTimeout = listen.keepAliveTimeoutSeconds * 1000;
  // One over the limit, so that exceeding it is seen (and refused) rather than truncated.
  server.maxHeadersCount = listen.maxHeaderCount + 1;
}
