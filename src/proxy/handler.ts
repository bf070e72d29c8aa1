// The thin I/O shell around the decision. It routes: a request becomes facts, is decided,
// recorded (metrics/recorder.ts), then refused, answered (forward-auth), or admitted
// (limits.ts) and exchanged with the gateway (forward.ts, gateway/upgrade.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { randomId } from '../assertion/sign.js';
import type { Config } from '../config/schema.js';
import { decide, type AllowedDecision } from '../decision/decide.js';
import { gatewayHeaders, upstreamHeaders } from '../decision/gateway-headers.js';
import { exchangeFailure } from '../gateway/errors.js';
import { relayUpgrade } from '../gateway/upgrade.js';
import type { Recorder, Decided } from '../metrics/recorder.js';
import { pathOf } from '../request/request.js';
import { decisionContext, type Snapshot } from '../runtime/snapshot.js';
import { certificateOfPeer } from '../trust/certificate.js';
import type { TlsCertificate } from '../trust/source.js';
import type { Mode, RequestFacts } from '../vocabulary/facts.js';
import { REFUSALS, refusalBody, type LimitReason } from '../vocabulary/refusals.js';
import { declaredLength } from './body.js';
import { hasBody, type Forwarder } from './forward.js';
import { isClosing, trackResponse, whenSettled } from './in-flight.js';
import type { Admission, RateLimit } from './limits.js';
import { rejectUpgrade, sendJson } from './respond.js';
import type { WebSocketTracker } from './websockets.js';

const TIMEOUT_BODY = '{"error":"upstream_timeout"}';
const UNAVAILABLE_BODY = '{"error":"upstream_unavailable"}';

/** A request waiting, with the others parsed since, for its decision. */
interface Parsed {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/** What the handler works with, handed in by the sidecar that assembles it (server/sidecar.ts). */
export interface HandlerParts {
  /** The snapshot in force: taken once per request and kept to its end. */
  readonly snapshot: () => Snapshot;
  readonly recorder: Recorder;
  readonly admission: Admission;
  readonly websockets: WebSocketTracker;
  /** What carries allowed requests to the gateway (the differential tests hand in another). */
  readonly forwarder: Forwarder;
  /** A token named a key the provider's set lacks: its key source may fetch again (rate-limited). */
  readonly unknownProviderKey: () => void;
  /** Requests per source on each machine route (routes[].requestsPerMinutePerSource). */
  readonly routeRates: RateLimit;
}

export class RequestHandler {
  /** Requests parsed since the last batch was decided, in arrival order. */
  private parsed: Parsed[] = [];

  constructor(private readonly parts: HandlerParts) {}

  onRequest(req: IncomingMessage, res: ServerResponse): void {
    trackResponse(req.socket, res);
    // Node parses every request in the bytes one read brought, and any error after them,
    // before the loop's next phase (not before the next tick: a request body's events run
    // the tick queue in between). Deciding then lets a parse error later in the same bytes,
    // which closes the connection unanswered, stop these requests too.
    if (this.parsed.push({ req, res }) === 1) setImmediate(this.decideBatch);
  }

  /**
   * Decides every request parsed since the last batch, then records and acts on each in
   * arrival order. Deciding them one after the other, before any is written to the
   * gateway, cost 4 to 6 µs less CPU per request at saturation than deciding each right
   * before its write, in alternating runs (docs/decisions/0006-decisions-in-batches.md); presumably a write in
   * between leaves the decision's code and data, the HMAC's among them, cold in the caches.
   * A decision has no effect of its own (a signed assertion that is never sent binds
   * nothing), so the second pass can still drop a request that an earlier one's answer
   * left unanswerable, as if it was never decided.
   */
  private readonly decideBatch = (): void => {
    const batch = this.parsed;
    this.parsed = [];
    // One snapshot from the decision to the upstream write.
    const snapshot = this.parts.snapshot();
    const decided = batch.map(({ req }) => (unanswerable(req) ? undefined : this.decideRequest(req, modeOf(req, snapshot.config), false, snapshot)));
    for (let i = 0; i < batch.length; i++) this.handle(batch[i]!, decided[i], snapshot);
  };

  private handle({ req, res }: Parsed, decided: Decided | undefined, snapshot: Snapshot): void {
    if (decided === undefined || unanswerable(req)) return;
    const decision = this.record(decided, snapshot);
    const { mode } = decided.facts;
    if (!decision.ok) {
      const headers: Record<string, string> = { 'x-request-id': decision.requestId };
      // A refused request's body is never read, and a peer outside the trusted set has no
      // business keeping a connection: close rather than drain or keep it.
      if (hasBody(req) || decision.reason === 'untrusted_source') headers['connection'] = 'close';
      sendJson(res, refusalStatus(decision.status, mode), refusalBody(decision.reason), headers);
      return;
    }
    const route = decision.route === undefined ? undefined : snapshot.config.routes.find((r) => r.name === decision.route);
    if (
      route !== undefined &&
      route.requestsPerMinutePerSource > 0 &&
      !this.parts.routeRates.take(`${route.name} ${decision.client}`, route.requestsPerMinutePerSource, Date.now())
    ) {
      this.refuseByLimit(res, decision, 'route_rate_limited', snapshot.config, mode);
      return;
    }
    if (mode === 'forward-auth') {
      sendJson(res, 200, '{"result":"allowed"}', grantHeaders(snapshot.config, decision));
      return;
    }
    const limits = limitsOf(snapshot.config, route);
    this.parts.admission.admit(
      res,
      decision.identity.user,
      declaredLength(req.headers['content-length']),
      limits,
      () => this.forward(req, res, decision, snapshot, limits),
      (reason) => this.refuseByLimit(res, decision, reason, snapshot.config),
    );
  }

  private forward(req: IncomingMessage, res: ServerResponse, decision: AllowedDecision, snapshot: Snapshot, limits: Config['limits']): void {
    const { upstream } = snapshot.config;
    const started = process.hrtime.bigint();
    const target = {
      endpoint: snapshot.gateway,
      principal: decision.identity.user,
      connectTimeoutMs: upstream.connectTimeoutSeconds * 1000,
      timeoutMs: upstream.timeoutSeconds * 1000,
      bodyStallMs: limits.clientStallTimeoutSeconds * 1000,
      maxBodyBytes: limits.maxRequestBodyBytes,
    };
    this.parts.forwarder.forward(req, res, upstreamHeaders(decision, snapshot.rules), target, {
      response: (status) => this.parts.recorder.upstreamResponse(status, started),
      failed: (err) => {
        const failure = exchangeFailure(err);
        if (failure === 'request_body_stalled' || failure === 'request_body_too_large') {
          this.refuseByLimit(res, decision, failure === 'request_body_stalled' ? 'body_timeout' : 'body_too_large', snapshot.config);
          return;
        }
        const kind = this.parts.recorder.upstreamError(err);
        sendJson(res, kind === 'timeout' ? 504 : 502, kind === 'timeout' ? TIMEOUT_BODY : UNAVAILABLE_BODY);
      },
    });
  }

  /**
   * Node hands over an upgrading connection as soon as it parses the request; responses to
   * requests pipelined before it are finished first, so nothing overtakes them.
   */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    whenSettled(socket, () => {
      if (!socket.destroyed) this.upgrade(req, socket, head);
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const snapshot = this.parts.snapshot();
    const mode = modeOf(req, snapshot.config);
    const decision = this.record(this.decideRequest(req, mode, true, snapshot), snapshot);
    if (!decision.ok) {
      rejectUpgrade(socket, refusalStatus(decision.status, mode), refusalBody(decision.reason), { 'x-request-id': decision.requestId });
      return;
    }
    // Caddy's forward_auth passes a client's Upgrade on to the auth endpoint: answer it
    // like any sub-request (the forward-auth path is never proxied) and close.
    if (mode === 'forward-auth') {
      rejectUpgrade(socket, 200, '{"result":"allowed"}', grantHeaders(snapshot.config, decision));
      return;
    }
    const { websockets, recorder } = this.parts;
    if (!websockets.hold(socket, decision.identity.user)) {
      recorder.limitRefusal(decision, 'identity_websocket_limit', snapshot.config.logging);
      rejectUpgrade(socket, REFUSALS.identity_websocket_limit, refusalBody('identity_websocket_limit'), { 'x-request-id': decision.requestId });
      return;
    }
    const { connectTimeoutSeconds, timeoutSeconds } = snapshot.config.upstream;
    const { maxWebSocketLifetimeSeconds } = snapshot.config.listen;
    const started = process.hrtime.bigint();
    const target = { endpoint: snapshot.gateway, connectTimeoutMs: connectTimeoutSeconds * 1000, timeoutMs: timeoutSeconds * 1000 };
    relayUpgrade(req, socket, head, upstreamHeaders(decision, snapshot.rules), target, {
      response: (status) => recorder.upstreamResponse(status, started),
      switched: (upstream) => websockets.add(socket as Socket, upstream, decision.identity, decision, maxWebSocketLifetimeSeconds),
      failed: (err) => {
        const kind = recorder.upstreamError(err);
        rejectUpgrade(socket, kind === 'timeout' ? 504 : 502, kind === 'timeout' ? TIMEOUT_BODY : UNAVAILABLE_BODY);
      },
    });
  }

  private refuseByLimit(res: ServerResponse, decision: AllowedDecision, reason: LimitReason, config: Config, mode: Mode = 'inline'): void {
    this.parts.recorder.limitRefusal(decision, reason, config.logging);
    // Past a body limit the rest of the body is never read: close rather than drain it.
    const close = reason === 'body_timeout' || reason === 'body_too_large';
    sendJson(res, refusalStatus(REFUSALS[reason], mode), refusalBody(reason), { 'x-request-id': decision.requestId, ...(close && { connection: 'close' }) });
  }

  private decideRequest(req: IncomingMessage, mode: Mode, upgrade: boolean, snapshot: Snapshot): Decided {
    const started = process.hrtime.bigint();
    const facts: RequestFacts = {
      mode,
      peer: req.socket.remoteAddress ?? '',
      tls: (req.socket as TLSSocket).encrypted === true,
      tlsCertificate: snapshot.config.listen.clientCAFile ? clientCertificate(req.socket as TLSSocket) : undefined,
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      rawHeaders: req.rawHeaders,
      upgrade,
    };
    const decision = decide(facts, decisionContext(snapshot, Date.now(), randomId));
    return { facts, decision, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  }

  /** Records a decision about to be acted on; a token naming an unknown key may fetch the provider's keys again. */
  private record(decided: Decided, snapshot: Snapshot): Decided['decision'] {
    const { decision } = decided;
    this.parts.recorder.decision(decided, snapshot.config.logging);
    if (!decision.ok && decision.reason === 'identity_token_unknown_key') this.parts.unknownProviderKey();
    return decision;
  }
}

/**
 * Pipelined behind an answer that closes the connection: never answered, so never decided
 * or forwarded (in-flight.ts). Nor is a request whose connection went in the meantime: its
 * response's close may already have passed, and a share or slot taken now would never be
 * given back.
 */
function unanswerable(req: IncomingMessage): boolean {
  return isClosing(req.socket) || req.socket.destroyed;
}

/** A machine route's own body limit in place of limits.maxRequestBodyBytes, where it sets one. */
function limitsOf(config: Config, route: Config['routes'][number] | undefined): Config['limits'] {
  return route === undefined || route.maxBodyBytes < 0 ? config.limits : { ...config.limits, maxRequestBodyBytes: route.maxBodyBytes };
}

function modeOf(req: IncomingMessage, config: Config): Mode {
  const { forwardAuth } = config;
  return forwardAuth.enabled && pathOf(req.url ?? '/') === forwardAuth.path ? 'forward-auth' : 'inline';
}

/** Forward-auth answers carry what the front proxy copies onto the request it forwards. */
function grantHeaders(config: Config, decision: AllowedDecision): Record<string, string> {
  const lines = gatewayHeaders(config, decision);
  const headers: Record<string, string> = {};
  for (let i = 0; i < lines.length; i += 2) headers[lines[i]!] = lines[i + 1]!;
  return headers;
}

/**
 * nginx auth_request turns any answer but 2xx, 401 and 403 into a 500 for the client, so a
 * forward-auth refusal is always one of those two; the body still names the reason.
 */
function refusalStatus(status: number, mode: Mode): number {
  return mode === 'forward-auth' && status !== 401 ? 403 : status;
}

/** A connection's client certificate is the same for every request on it: read it once. */
const certificates = new WeakMap<TLSSocket, TlsCertificate>();
function clientCertificate(socket: TLSSocket): TlsCertificate {
  if (certificates.has(socket)) return certificates.get(socket);
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  // Node gives an empty object when the client sent none.
  const cert: TlsCertificate = !peer || Object.keys(peer).length === 0 ? undefined : socket.authorized ? certificateOfPeer(peer) : 'unverified';
  certificates.set(socket, cert);
  return cert;
}
