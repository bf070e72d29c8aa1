// Forwards one HTTP request to the gateway on the client connection's own connection to it
// (gateway-connection.ts) and streams the answer back. Both bodies stream with backpressure
// and are never held whole; either side going away ends the other. On purpose: a client's
// request trailers are not passed on (they never met the header pass, so an identity could
// hide there); the gateway's response trailers are, as are its 103 Early Hints; its other
// informational answers (100, 102) belong to its own hop, since the sidecar answered the
// client's Expect itself.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HOP_BY_HOP } from '../request/protected.js';
import { RequestBodyGuard } from './body.js';
import { GatewayConnection, type GatewayAddress } from './gateway-connection.js';

/** Where and how one request goes: all from the snapshot it was decided under. */
export interface ForwardTarget extends GatewayAddress {
  /** Whose request it is (gateway-connection.ts: a connection carries one principal's exchanges). */
  readonly principal: string;
  /** The longest wait for the response headers, and between two pieces of a body. */
  readonly timeoutMs: number;
  /** The longest wait for the client's next bytes of a request body. */
  readonly bodyStallMs: number;
  /** The largest request body passed on (0: no maximum); over it the exchange fails with BODY_TOO_LARGE. */
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
      head = requestHead(method, req.url ?? '/', headers, target.url, codings);
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
      address: target,
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

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The request head for the gateway: the client's method and target byte for byte (the
 * assertion binds this exact target), the given header lines, a Host if none came, and the
 * body's framing (`codings`: the Transfer-Encoding of a body sent chunked). The server's parser has already refused anything malformed from the
 * client; every line is checked again here, so a value that could split the head fails the
 * exchange instead of reaching the gateway. `Expect` is never passed on: the sidecar's
 * server answered the client's 100-continue itself, so the body comes either way.
 */
export function requestHead(method: string, target: string, headers: readonly string[], origin: string, codings: string | undefined): string {
  if (!TOKEN.test(method) || !/^[\x21-\x7e\x80-\xff]+$/.test(target)) throw badRequestHead('request line');
  let head = `${method} ${target} HTTP/1.1\r\n`;
  let host = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name === 'expect') continue;
    if (name === 'host') host = true;
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw badRequestHead(`header ${JSON.stringify(name)}`);
    head += `${name}: ${value}\r\n`;
  }
  if (!host) head += `host: ${new URL(origin).host}\r\n`;
  if (codings !== undefined) {
    if (!FIELD_VALUE.test(codings)) throw badRequestHead('transfer coding');
    head += `transfer-encoding: ${codings}\r\n`;
  }
  return `${head}\r\n`;
}

function badRequestHead(what: string): Error {
  return Object.assign(new Error(`a ${what} the gateway may not be sent`), { code: 'UPSTREAM_BAD_REQUEST' });
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
