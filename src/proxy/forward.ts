// Forwards one HTTP request to the gateway on the client connection's own connection to it
// (gateway/connection.ts) and streams the answer back. Both bodies stream with backpressure
// and are never held whole; either side going away ends the other. On purpose: a client's
// request trailers are not passed on (they never met the header pass, so an identity could
// hide there); the gateway's response trailers are, as are its 103 Early Hints; its other
// informational answers (100, 102) belong to its own hop, since the sidecar answered the
// client's Expect itself.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HOP_BY_HOP } from '../request/protected.js';
import { GatewayConnection } from '../gateway/connection.js';
import type { GatewayEndpoint } from '../gateway/endpoint.js';
import { requestHead } from '../gateway/request-head.js';
import { RequestBodyGuard } from './body.js';

/** Where and how one request goes: all from the snapshot it was decided under. */
export interface ForwardTarget {
  readonly endpoint: GatewayEndpoint;
  readonly connectTimeoutMs: number;
  /** Whose request it is (gateway/connection.ts: a connection carries one principal's exchanges). */
  readonly principal: string;
  /** The longest wait for the response headers, and between two pieces of a body. */
  readonly timeoutMs: number;
  /** The longest wait for the client's next bytes of a request body. */
  readonly bodyStallMs: number;
  /** The largest request body passed on (0: no maximum); over it the exchange fails with `request_body_too_large`. */
  readonly maxBodyBytes: number;
}

export interface ForwardHooks {
  /** The gateway's final response headers arrived. */
  response(status: number): void;
  /** The exchange failed: before the response (answer for it) or during it (cut it off). */
  failed(err: Error): void;
}

/** What carries an allowed request to the gateway and its answer back. */
export interface Forwarder {
  /** `headers`: flat header lines (name, value, …) with lower-case names, as upstreamHeaders() makes them. */
  forward(req: IncomingMessage, res: ServerResponse, headers: string[], target: ForwardTarget, hooks: ForwardHooks): void;
  /** Ends every connection to the gateway (after the servers have drained). */
  close(): void;
}

/** Each client connection pinned to a gateway connection of its own, made at its first forwarded request. */
export class PinnedForwarder implements Forwarder {
  private readonly byClient = new WeakMap<Socket, GatewayConnection>();
  private readonly open = new Set<GatewayConnection>();

  close(): void {
    for (const connection of this.open) connection.close();
    this.open.clear();
  }

  forward(req: IncomingMessage, res: ServerResponse, headers: string[], target: ForwardTarget, hooks: ForwardHooks): void {
    const connection = this.connectionOf(req.socket);
    const method = req.method ?? 'GET';
    const body = hasBody(req) ? req.pipe(new RequestBodyGuard(target.maxBodyBytes, target.bodyStallMs)) : null;
    const chunked = body !== null && !hasField(headers, 'content-length');
    // Node removed the chunked framing only: codings the client applied before it (gzip,
    // chunked) still shape the body, and go on with it.
    const codings = chunked ? (req.headers['transfer-encoding'] ?? 'chunked') : undefined;
    let head: string;
    try {
      head = requestHead(method, req.url ?? '/', headers, target.endpoint.authority, codings);
    } catch (err) {
      body?.destroy();
      hooks.failed(err as Error);
      return;
    }
    let done = false;
    let clientGone = false;
    const finish = () => {
      done = true;
      res.off('close', onClose);
    };
    const exchange = {
      endpoint: target.endpoint,
      connectTimeoutMs: target.connectTimeoutMs,
      principal: target.principal,
      method,
      head,
      body,
      chunked,
      timeoutMs: target.timeoutMs,
      handler: {
        informational(status: number, fields: IncomingHttpHeaders) {
          if (status === 103) passEarlyHints(req, res, fields);
        },
        head(status: number, fields: IncomingHttpHeaders) {
          hooks.response(status);
          res.writeHead(status, clientHeaders(fields, res.shouldKeepAlive));
        },
        data(chunk: Buffer) {
          if (!res.write(chunk)) {
            connection.pause();
            res.once('drain', () => connection.resume());
          }
        },
        end(trailers: IncomingHttpHeaders) {
          finish();
          passTrailers(res, trailers);
          res.end();
        },
        failed(err: Error) {
          finish();
          if (!clientGone) hooks.failed(err);
        },
      },
    };
    // The client resetting or closing before the response is complete ends the exchange.
    const onClose = () => {
      if (done) return;
      clientGone = true;
      body?.destroy();
      connection.cancel(exchange);
    };
    res.on('close', onClose);
    connection.send(exchange);
  }

  private connectionOf(client: Socket): GatewayConnection {
    const pinned = this.byClient.get(client);
    if (pinned !== undefined) return pinned;
    const connection = new GatewayConnection();
    this.byClient.set(client, connection);
    this.open.add(connection);
    client.once('close', () => {
      connection.close();
      this.open.delete(connection);
    });
    return connection;
  }
}

function hasField(headers: readonly string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true;
  return false;
}

/**
 * The gateway's headers minus those of its own hop: Connection and Keep-Alive describe the
 * gateway connection (copied, they would keep open a connection the client asked to close),
 * Transfer-Encoding the framing the parser already removed, and the names the gateway's
 * Connection lists belong to that hop too (RFC 9110, 7.6.1). Trailer goes as well: Node
 * refuses to write it on a response it does not chunk (to an HTTP/1.0 client, say), and the
 * trailers themselves need no announcement. An answer framed by Transfer-Encoding loses its
 * Content-Length too (RFC 9112, 6.3): the body was read to its chunked end, not to that
 * length, and passed on, the length would frame it differently for the client.
 */
export function clientHeaders(upstream: IncomingHttpHeaders, keepAlive: boolean): OutgoingHttpHeaders {
  const headers = upstream as OutgoingHttpHeaders;
  if (headers['transfer-encoding'] !== undefined) delete headers['content-length'];
  dropHopByHop(headers);
  headers['connection'] = keepAlive ? 'keep-alive' : 'close';
  return headers;
}

export function dropHopByHop(headers: Record<string, unknown>): void {
  const connection = headers['connection'];
  if (connection !== undefined) for (const name of String(connection).split(',')) delete headers[name.trim().toLowerCase()];
  for (const name of HOP_BY_HOP) delete headers[name];
}

/**
 * A 103's Link lines let the browser start loading early. HTTP/1.0 clients get no 1xx
 * (RFC 9110, 15.2), nor does a response already begun; a Link Node will not write is dropped.
 */
export function passEarlyHints(req: IncomingMessage, res: ServerResponse, hints: IncomingHttpHeaders): void {
  if (hints['link'] === undefined || res.headersSent || req.httpVersionMinor === 0) return;
  try {
    res.writeEarlyHints({ link: hints['link'] });
  } catch {
    // Not a valid Link value: the hint is optional, the response follows regardless.
  }
}

/** The gateway's trailers, less hop-by-hop names; Node sends them on a chunked response only (else drops them). */
export function passTrailers(res: ServerResponse, trailers: IncomingHttpHeaders | Record<string, string | string[]> | null): void {
  // Most responses have none: no copy then.
  let any = false;
  for (const _ in trailers) {
    any = true;
    break;
  }
  if (!any) return;
  const fields = { ...trailers } as Record<string, string | string[]>;
  dropHopByHop(fields);
  if (Object.keys(fields).length === 0) return;
  try {
    res.addTrailers(fields);
  } catch {
    // A field Node refuses to write (an invalid name or value) ends the body without trailers.
  }
}

export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
