// Forwards one HTTP request to the gateway over the undici pool and streams the answer
// back. Both bodies stream with backpressure and are never held whole; either side going
// away ends the other. On purpose: a client's request trailers are not passed on (they
// never met the header pass, so an identity could hide there); the gateway's response
// trailers are, as are its 103 Early Hints; its other informational answers (100, 102)
// belong to its own hop, since the sidecar answered the client's Expect itself.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { HOP_BY_HOP } from '../request/protected.js';
import { RequestBodyGuard } from './body.js';

export interface ForwardTarget {
  readonly dispatcher: Dispatcher;
  /** The gateway's origin, e.g. `http://127.0.0.1:18789`. */
  readonly origin: string;
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

/** `headers`: flat header lines (name, value, …) with lower-case names, as upstreamHeaders() makes them. */
export function forward(req: IncomingMessage, res: ServerResponse, headers: string[], target: ForwardTarget, hooks: ForwardHooks): void {
  // The server already answered a client's `Expect: 100-continue` (and refused any other
  // expectation), so the body comes either way; undici refuses to send the header.
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i] === 'expect') headers.splice(i, 2);
  let controller: Dispatcher.DispatchController | undefined;
  let clientGone = false;
  let done = false;
  // The client resetting or closing before the response is complete aborts the exchange.
  const onClose = () => {
    if (done) return;
    clientGone = true;
    controller?.abort(new Error('client went away'));
  };
  res.once('close', onClose);
  const finish = () => {
    done = true;
    res.off('close', onClose);
  };
  target.dispatcher.dispatch(
    {
      origin: target.origin,
      // Byte for byte: the assertion binds this exact target.
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers,
      // Through a stream of its own because undici destroys the body it was given when the
      // exchange fails, and destroying the request itself would reset the client's
      // connection before the answer reaches it.
      body: hasBody(req) ? req.pipe(new RequestBodyGuard(target.maxBodyBytes, target.bodyStallMs)) : null,
      headersTimeout: target.timeoutMs,
      bodyTimeout: target.timeoutMs,
    },
    {
      onRequestStart(c) {
        controller = c;
        if (clientGone) c.abort(new Error('client went away'));
      },
      onResponseStart(c, status, upstreamHeaders) {
        if (status < 200) {
          if (status === 103) passEarlyHints(req, res, upstreamHeaders);
          return;
        }
        hooks.response(status);
        res.writeHead(status, clientHeaders(upstreamHeaders, res.shouldKeepAlive));
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk) && !c.paused) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd(_c, trailers) {
        finish();
        passTrailers(res, trailers);
        res.end();
      },
      onResponseError(_c, err) {
        finish();
        if (!clientGone) hooks.failed(err);
      },
    },
  );
}

/**
 * The gateway's headers minus those of its own hop: Connection and Keep-Alive describe the
 * pooled connection (copied, they would keep open a connection the client asked to close),
 * Transfer-Encoding the framing undici already removed, and the names the gateway's
 * Connection lists belong to that hop too (RFC 9110, 7.6.1). Trailer goes as well: Node
 * refuses to write it on a response it does not chunk (to an HTTP/1.0 client, say), and the
 * trailers themselves need no announcement.
 */
function clientHeaders(upstream: IncomingHttpHeaders, keepAlive: boolean): OutgoingHttpHeaders {
  const headers = upstream as OutgoingHttpHeaders;
  dropHopByHop(headers);
  headers['connection'] = keepAlive ? 'keep-alive' : 'close';
  return headers;
}

function dropHopByHop(headers: Record<string, unknown>): void {
  const connection = headers['connection'];
  if (connection !== undefined) for (const name of String(connection).split(',')) delete headers[name.trim().toLowerCase()];
  for (const name of HOP_BY_HOP) delete headers[name];
}

/**
 * A 103's Link lines let the browser start loading early. HTTP/1.0 clients get no 1xx
 * (RFC 9110, 15.2), nor does a response already begun; a Link Node will not write is dropped.
 */
function passEarlyHints(req: IncomingMessage, res: ServerResponse, hints: IncomingHttpHeaders): void {
  if (hints['link'] === undefined || res.headersSent || req.httpVersionMinor === 0) return;
  try {
    res.writeEarlyHints({ link: hints['link'] });
  } catch {
    // Not a valid Link value: the hint is optional, the response follows regardless.
  }
}

/** The gateway's trailers, less hop-by-hop names; Node sends them on a chunked response only (else drops them). */
function passTrailers(res: ServerResponse, trailers: IncomingHttpHeaders | Record<string, string | string[]> | null): void {
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
