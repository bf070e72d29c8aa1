// Forwards one HTTP request to the gateway over the undici pool and streams the answer
// back. Both bodies stream with backpressure and are never held whole; either side going
// away ends the other.
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
        if (status < 200) return; // informational answers stay on the gateway's hop
        hooks.response(status);
        res.writeHead(status, clientHeaders(upstreamHeaders, res.shouldKeepAlive));
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk) && !c.paused) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        finish();
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
 * Connection lists belong to that hop too (RFC 9110, 7.6.1).
 */
function clientHeaders(upstream: IncomingHttpHeaders, keepAlive: boolean): OutgoingHttpHeaders {
  const headers = upstream as OutgoingHttpHeaders;
  const connection = upstream['connection'];
  if (connection !== undefined) for (const name of String(connection).split(',')) delete headers[name.trim().toLowerCase()];
  for (const name of HOP_BY_HOP) delete headers[name];
  headers['connection'] = keepAlive ? 'keep-alive' : 'close';
  return headers;
}

export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
