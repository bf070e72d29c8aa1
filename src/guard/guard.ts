// A guard inside the gateway's own process. The gateway trusts identity headers from
// loopback, that is from every process of the pod; bound beyond it by mistake, it would take
// them from anyone. Loaded with
// `node --import`, the guard wraps every HTTP server's event dispatch, so on the guarded
// ports a request, an `Expect` request and an upgrade reach the gateway's listeners only
// with a valid assertion bound to that method and target; anything else gets 401 from the
// guard and never reaches the gateway's code.
import { Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { AssertionError, receivedScopes, ReplayCache, requestUri, verifyAssertion, watchKeysDir, type VerifyOptions } from '../assertion/verify.js';
import { matchRoute } from '../routes/match.js';
import type { GuardOptions } from './options.js';

/** The events through which a gateway's server hands it a request or a connection. */
const REQUEST_EVENTS = new Set(['request', 'checkContinue', 'checkExpectation']);
const CONNECTION_EVENTS = new Set(['upgrade', 'connect']);

export type GuardVerdict = { ok: true } | { ok: false; error: string };

export interface GuardLog {
  readonly refused: (event: string, error: string, req: IncomingMessage) => void;
}

/**
 * Checks one request as the guard does: open path, or a valid assertion bound to it (method,
 * host and target, the scopes header when the guard knows it) and used once: a copy of an
 * assertion seen before is refused while it would still verify.
 */
export function guardCheck(options: GuardOptions, verify: VerifyOptions) {
  const replayCache = verify.replayCache ?? new ReplayCache();
  return async (event: string, req: IncomingMessage): Promise<GuardVerdict> => {
    // The sidecar never sends CONNECT: nothing legitimate tunnels through the guard.
    if (event === 'connect') return { ok: false, error: 'method_not_allowed' };
    const path = (req.url ?? '/').split('?')[0]!;
    if (event === 'request' && (req.method === 'GET' || req.method === 'HEAD') && options.openPaths.has(path)) return { ok: true };
    const token = req.headers[options.header];
    if (typeof token !== 'string' || token === '') {
      return options.localDirect && localDirect(req, options) ? { ok: true } : { ok: false, error: 'assertion_missing' };
    }
    try {
      const scopes = options.scopesHeader !== '' ? receivedScopes(req, options.scopesHeader) : undefined;
      const claims = await verifyAssertion(token, {
        ...verify,
        replayCache,
        request: { method: req.method ?? 'GET', uri: requestUri(req), ...(scopes && { scopes }) },
      });
      // A machine route's assertion names no user: the gateway must see none on its request,
      // else a route's pass would carry whatever user a header named.
      if (claims.route !== undefined) {
        if (options.userHeader !== '' && req.headers[options.userHeader] !== undefined) return { ok: false, error: 'assertion_user_mismatch' };
        const on = matchRoute(req.method ?? 'GET', req.url ?? '/', options.machineRoutes);
        if (on === undefined || on.route.name !== claims.route || !on.methodAllowed) return { ok: false, error: 'assertion_route_mismatch' };
        return { ok: true };
      }
      if (options.userHeader !== '' && !sameUser(req.headers[options.userHeader], claims.sub)) return { ok: false, error: 'assertion_user_mismatch' };
      return { ok: true };
    } catch (err) {
      return { ok: false, error: `assertion_${err instanceof AssertionError ? err.code : 'malformed'}` };
    }
  };
}

/**
 * A client inside the pod talking to the gateway itself, as OpenClaw's local-direct password
 * fallback expects it: from a loopback address, with no identity (user, scopes) and no
 * forwarding evidence (Forwarded, X-Forwarded-*, X-Real-IP; names compared as the sidecar
 * compares them, `_` and `.` as `-`). Anything the gateway could read as a proxied user's
 * request needs an assertion. What then authenticates the client is the gateway's password.
 */
function localDirect(req: IncomingMessage, options: GuardOptions): boolean {
  const peer = req.socket.remoteAddress ?? '';
  if (!(peer === '::1' || /^(::ffff:)?127\./.test(peer))) return false;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase().replace(/[_.]/g, '-');
    if (name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-forwarded-')) return false;
    if ((options.userHeader !== '' && name === options.userHeader) || (options.scopesHeader !== '' && name === options.scopesHeader)) return false;
  }
  return true;
}

/**
 * The user header as the gateway reads it against the assertion's `sub`: Node hands header
 * bytes over as latin1 text and the sidecar sends the user's UTF-8 bytes, so the two are
 * compared as bytes (józef@… and 张伟@… are several bytes a character).
 */
function sameUser(header: string | string[] | undefined, sub: string): boolean {
  return typeof header === 'string' && Buffer.from(header, 'latin1').equals(Buffer.from(sub, 'utf8'));
}

/** The verifier's options for the guard's keys: a key folder (read again on an unknown key id) or a JWK Set. */
export function verifyOptionsOf(options: GuardOptions): VerifyOptions & { keys?: ReturnType<typeof watchKeysDir> } {
  return {
    ...(options.jwks !== '' ? { jwks: options.jwks } : { keys: watchKeysDir(options.keysDir, options.algorithm) }),
    issuer: options.issuer,
    audience: options.audience,
  };
}

/**
 * Wraps `emit` of Node's HTTP and HTTPS servers. Returns a function that restores it (for
 * tests; a gateway keeps the guard for the life of its process).
 */
export function installGuard(options: GuardOptions, log: GuardLog): () => void {
  const check = guardCheck(options, verifyOptionsOf(options));
  const restores = [HttpServer.prototype, HttpsServer.prototype].map((proto) => {
    const own = Object.prototype.hasOwnProperty.call(proto, 'emit');
    const original = proto.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
    proto.emit = function guardedEmit(this: HttpServer, event: string | symbol, ...args: unknown[]): boolean {
      if (typeof event !== 'string' || !(REQUEST_EVENTS.has(event) || CONNECTION_EVENTS.has(event))) return original.call(this, event, ...args);
      const req = args[0] as IncomingMessage;
      // The port the connection came in on, not the server's: a server that stopped
      // listening still serves its open connections, and one may be handed sockets that
      // another server accepted. Unknown (a socket already gone) is guarded, unless the
      // server listens on a Unix socket, which no remote client reaches.
      const port = req.socket.localPort;
      if (port === undefined ? typeof this.address() === 'string' : !options.ports.has(port)) return original.call(this, event, ...args);
      const socket = CONNECTION_EVENTS.has(event) ? (args[1] as Duplex) : undefined;
      // Node removed its own error listener from an upgraded socket: without one, a client
      // resetting while the assertion is checked would end the gateway's process.
      const ignore = () => {};
      socket?.on('error', ignore);
      void check(event, req).then(
        (verdict) => {
          socket?.off('error', ignore);
          if (verdict.ok) {
            original.call(this, event, ...args);
            return;
          }
          log.refused(event, verdict.error, req);
          if (socket) refuseConnection(socket, verdict.error);
          else refuseRequest(args[1] as ServerResponse, verdict.error);
        },
        // check() answers every failure as a verdict; this is only a last line.
        () => (socket ? socket.destroy() : (args[1] as ServerResponse).destroy()),
      );
      return true;
    };
    return () => {
      if (own) proto.emit = original;
      else delete (proto as { emit?: unknown }).emit;
    };
  });
  return () => restores.forEach((restore) => restore());
}

function body(error: string): string {
  return JSON.stringify({ error });
}

function refuseRequest(res: ServerResponse, error: string): void {
  if (res.headersSent || res.destroyed) return;
  // The body was never read: close rather than parse whatever follows it.
  res.writeHead(401, { 'content-type': 'application/json', connection: 'close' }).end(body(error));
}

function refuseConnection(socket: Duplex, error: string): void {
  if (socket.destroyed) return;
  const text = body(error);
  socket.on('error', () => {});
  socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  // A client that never reads the answer does not keep the socket.
  setTimeout(() => socket.destroy(), CLOSE_AFTER_MS).unref();
}

const CLOSE_AFTER_MS = 5000;
