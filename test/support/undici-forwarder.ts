// The data plane the sidecar had before its own gateway connections: undici's Agent (a
// shared keep-alive pool) and its dispatch() API. Kept as the reference for the differential
// tests: the same requests through both must reach the gateway alike.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent } from 'undici';
import type { Config } from '../../src/config/schema.js';
import { RequestBodyGuard } from '../../src/proxy/body.js';
import { ExchangeError } from '../../src/gateway/errors.js';
import { clientHeaders, hasBody, passEarlyHints, passTrailers, type ForwardHooks, type ForwardTarget, type Forwarder } from '../../src/proxy/forward.js';

function pool(upstream: Config['upstream']): Agent {
  return new Agent({ connections: upstream.maxSockets, pipelining: 1, allowH2: false, connect: { timeout: upstream.connectTimeoutSeconds * 1000 } });
}

/** undici's failures as the sidecar's own data plane's, so both map to the same kind. */
function renamed(err: Error): Error {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new ExchangeError('connect_timeout', err.message);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new ExchangeError('answer_timeout', err.message);
    case 'UND_ERR_BODY_TIMEOUT':
      return new ExchangeError('response_stalled', err.message);
    case 'UND_ERR_SOCKET':
      return new ExchangeError('closed_early', err.message);
    default:
      return err;
  }
}

/** One Agent for the sidecar's life: it keeps a pool per origin, so each request goes to its snapshot's gateway. */
export class UndiciForwarder implements Forwarder {
  private readonly agent: Agent;

  constructor(upstream: Config['upstream']) {
    this.agent = pool(upstream);
  }

  close(): void {
    void this.agent.destroy();
  }

  forward(req: IncomingMessage, res: ServerResponse, headers: string[], target: ForwardTarget, hooks: ForwardHooks): void {
    for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i] === 'expect') headers.splice(i, 2);
    let controller: { abort(err: Error): void; paused: boolean; pause(): void; resume(): void } | undefined;
    let clientGone = false;
    let done = false;
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
    this.agent.dispatch(
      {
        origin: target.endpoint.url,
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers,
        body: hasBody(req) ? req.pipe(new RequestBodyGuard(target.maxBodyBytes, target.bodyStallMs)) : null,
        headersTimeout: target.timeoutMs,
        bodyTimeout: target.timeoutMs,
      },
      {
        onRequestStart(c) {
          controller = c;
          if (clientGone) c.abort(new Error('client went away'));
        },
        onResponseStart(_c, status, upstreamHeaders) {
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
          if (!clientGone) hooks.failed(renamed(err));
        },
      },
    );
  }
}
