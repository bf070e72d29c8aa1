// The thin I/O shell around the decision: turn a request into facts, decide, record the
// decision, then either forward (inline), answer (forward-auth) or refuse.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { decide, gatewayHeaders, upstreamHeaders, type AllowedDecision, type Decision, type Mode, type RequestFacts } from '../decision/decide.js';
import { REFUSALS, refusalBody } from '../decision/reasons.js';
import { clip, LineBudget, REFUSAL_LINES } from '../logging/line-budget.js';
import { loggedIdentity } from '../logging/logger.js';
import { perKey, statusClass } from '../metrics/metrics.js';
import type { Config } from '../config/schema.js';
import type { Runtime } from '../runtime/runtime.js';
import { decisionContext, type Snapshot } from '../runtime/snapshot.js';
import { pathOf } from '../request/request.js';
import { randomId } from '../assertion/sign.js';
import { exchangeFailure, upstreamErrorKind, type ExchangeFailure, type UpstreamErrorKind } from '../gateway/errors.js';
import { gatewayEndpoint } from '../gateway/endpoint.js';
import { relayUpgrade } from '../gateway/upgrade.js';
import { declaredLength } from './body.js';
import { hasBody, PinnedForwarder, type Forwarder } from './forward.js';
import { isClosing, owe, whenSettled } from './in-flight.js';
import { identityRequestLimit, PerKeyLimit, UpstreamSlots } from './limits.js';
import { rejectUpgrade, sendJson } from './respond.js';
import { WebSocketTracker } from './websockets.js';
import { certificateOfPeer } from '../trust/certificate.js';
import type { TlsCertificate } from '../trust/source.js';

const TIMEOUT_BODY = '{"error":"upstream_timeout"}';
const UNAVAILABLE_BODY = '{"error":"upstream_unavailable"}';

/** A request waiting, with the others parsed since, for its decision. */
interface Parsed {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/** A decision and what it was made from, not yet recorded or acted on. */
interface Judged {
  readonly facts: RequestFacts;
  readonly decision: Decision;
  readonly seconds: number;
}

/** Refusals by a limit, after the decision allowed the request. */
type LimitReason = 'body_timeout' | 'body_too_large' | 'identity_request_limit' | 'identity_websocket_limit' | 'upstream_busy';

export class RequestHandler {
  readonly websockets: WebSocketTracker;
  private readonly forwarder: Forwarder;
  /** Upstream requests each identity has in flight or waiting. */
  private readonly requests: PerKeyLimit;
  readonly slots: UpstreamSlots;
  // Metric children for what every allowed request records.
  private readonly decisionTime;
  private readonly allowedCount;
  private readonly strippedCount;
  private readonly signedCount;
  private readonly responseCount;
  /** Requests parsed since the last batch was decided, in arrival order. */
  private parsed: Parsed[] = [];
  /** Refusal lines each peer may write (logging/line-budget.ts). */
  private readonly refusalLines = new LineBudget(REFUSAL_LINES, Date.now());
  private readonly linesHeld;

  /** `forwarder`: what carries allowed requests to the gateway (the differential tests hand in another). */
  constructor(
    private readonly runtime: Runtime,
    forwarder?: Forwarder,
  ) {
    const { metrics } = runtime;
    this.decisionTime = perKey((mode: Mode) => metrics.decisionSeconds.labels(mode));
    this.allowedCount = perKey((mode: Mode) => metrics.batched(metrics.decisions, { mode, result: 'allowed', reason: 'allowed' }));
    this.strippedCount = perKey((header: string) => metrics.batched(metrics.headersStripped, { header }));
    this.signedCount = perKey((kid: string) => metrics.batched(metrics.assertionsSigned, { kid }));
    this.responseCount = perKey((status: number) => metrics.batched(metrics.upstreamResponses, { class: statusClass(status) }));
    this.linesHeld = perKey((line: 'refused' | 'refused_by_limit') => metrics.logLinesHeld.labels(line));
    this.forwarder = forwarder ?? new PinnedForwarder();
    const { upstream, limits } = runtime.config;
    this.websockets = new WebSocketTracker(runtime.metrics, limits.maxWebSocketsPerIdentity);
    this.requests = new PerKeyLimit(identityRequestLimit(upstream.maxSockets, limits.identityPoolShare));
    this.slots = new UpstreamSlots(upstream.maxSockets, limits.queueTimeoutSeconds * 1000);
    metrics.observeUpstreamSlots(() => ({ busy: this.slots.busy, queued: this.slots.queued }));
  }

  /** A reloaded config's limits (reload.ts); requests already admitted keep theirs. */
  follow(config: Config): void {
    const { upstream, limits } = config;
    this.requests.setLimit(identityRequestLimit(upstream.maxSockets, limits.identityPoolShare));
    this.websockets.setLimit(limits.maxWebSocketsPerIdentity);
    this.slots.update(upstream.maxSockets, limits.queueTimeoutSeconds * 1000);
  }

  onRequest(req: IncomingMessage, res: ServerResponse): void {
    owe(req.socket, res);
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
   * before its write, in alternating runs (docs/performance.md); presumably a write in
   * between leaves the decision's code and data, the HMAC's among them, cold in the caches.
   * A decision has no effect of its own (a signed assertion that is never sent binds
   * nothing), so the second pass can still drop a request that an earlier one's answer
   * left unanswerable, as if it was never decided.
   */
  private readonly decideBatch = (): void => {
    const batch = this.parsed;
    this.parsed = [];
    // One snapshot from the decision to the upstream write.
    const snapshot = this.runtime.snapshot;
    const judged = batch.map(({ req }) => (unanswerable(req) ? undefined : this.judge(req, modeOf(req, snapshot.config), false, snapshot)));
    for (let i = 0; i < batch.length; i++) this.handle(batch[i]!, judged[i], snapshot);
  };

  private handle({ req, res }: Parsed, judged: Judged | undefined, snapshot: Snapshot): void {
    if (judged === undefined || unanswerable(req)) return;
    const decision = this.record(judged, snapshot);
    const { mode } = judged.facts;
    if (!decision.ok) {
      const headers: Record<string, string> = { 'x-request-id': decision.requestId };
      // A refused request's body is never read, and a peer outside the trusted set has no
      // business keeping a connection: close rather than drain or keep it.
      if (hasBody(req) || decision.reason === 'untrusted_source') headers['connection'] = 'close';
      sendJson(res, refusalStatus(decision.status, mode), refusalBody(decision.reason), headers);
      return;
    }
    if (mode === 'forward-auth') {
      sendJson(res, 200, '{"result":"allowed"}', grantHeaders(snapshot.config, decision));
      return;
    }
    this.admit(req, res, decision, snapshot);
  }

  /**
   * An allowed inline request takes its identity's share and then one of the gateway's
   * slots (waiting, with a deadline, when all are busy); both are given back when the response
   * is done or abandoned.
   */
  private admit(req: IncomingMessage, res: ServerResponse, decision: AllowedDecision, snapshot: Snapshot): void {
    const { limits } = snapshot.config;
    const length = declaredLength(req.headers['content-length']);
    if (limits.maxRequestBodyBytes > 0 && length !== undefined && length > limits.maxRequestBodyBytes) {
      this.refuseByLimit(res, decision, 'body_too_large', snapshot.config);
      return;
    }
    const user = decision.identity.user;
    if (!this.requests.tryAcquire(user)) {
      this.refuseByLimit(res, decision, 'identity_request_limit', snapshot.config);
      return;
    }
    let holding = false;
    const withdraw = this.slots.acquire(
      () => {
        holding = true;
        this.forward(req, res, decision, snapshot);
      },
      () => this.refuseByLimit(res, decision, 'upstream_busy', snapshot.config),
    );
    res.on('close', () => {
      withdraw();
      this.requests.release(user);
      if (holding) this.slots.release();
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, decision: AllowedDecision, snapshot: Snapshot): void {
    const { upstream, limits } = snapshot.config;
    const started = process.hrtime.bigint();
    const target = {
      endpoint: gatewayEndpoint(upstream.url),
      principal: decision.identity.user,
      connectTimeoutMs: upstream.connectTimeoutSeconds * 1000,
      timeoutMs: upstream.timeoutSeconds * 1000,
      bodyStallMs: limits.clientStallTimeoutSeconds * 1000,
      maxBodyBytes: limits.maxRequestBodyBytes,
    };
    this.forwarder.forward(req, res, upstreamHeaders(decision, snapshot.rules), target, {
      response: (status) => this.observeUpstream(status, started),
      failed: (err) => {
        const failure = exchangeFailure(err);
        if (failure === 'request_body_stalled' || failure === 'request_body_too_large') {
          this.refuseByLimit(res, decision, failure === 'request_body_stalled' ? 'body_timeout' : 'body_too_large', snapshot.config);
          return;
        }
        const kind = this.countUpstreamError(failure, err);
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
    const snapshot = this.runtime.snapshot;
    const mode = modeOf(req, snapshot.config);
    const decision = this.record(this.judge(req, mode, true, snapshot), snapshot);
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
    if (!this.websockets.hold(socket, decision.identity.user)) {
      this.countLimit(decision, 'identity_websocket_limit', snapshot.config);
      rejectUpgrade(socket, REFUSALS.identity_websocket_limit, refusalBody('identity_websocket_limit'), { 'x-request-id': decision.requestId });
      return;
    }
    const { url, connectTimeoutSeconds, timeoutSeconds } = snapshot.config.upstream;
    const { maxWebSocketLifetimeSeconds } = snapshot.config.listen;
    const started = process.hrtime.bigint();
    const target = { endpoint: gatewayEndpoint(url), connectTimeoutMs: connectTimeoutSeconds * 1000, timeoutMs: timeoutSeconds * 1000 };
    relayUpgrade(req, socket, head, upstreamHeaders(decision, snapshot.rules), target, {
      response: (status) => this.observeUpstream(status, started),
      switched: (upstream) => this.websockets.add(socket as Socket, upstream, decision.identity, decision, maxWebSocketLifetimeSeconds),
      failed: (err) => {
        const kind = this.countUpstreamError(exchangeFailure(err), err);
        rejectUpgrade(socket, kind === 'timeout' ? 504 : 502, kind === 'timeout' ? TIMEOUT_BODY : UNAVAILABLE_BODY);
      },
    });
  }

  private refuseByLimit(res: ServerResponse, decision: AllowedDecision, reason: LimitReason, config: Config): void {
    this.countLimit(decision, reason, config);
    // Past a body limit the rest of the body is never read: close rather than drain it.
    const close = reason === 'body_timeout' || reason === 'body_too_large';
    sendJson(res, REFUSALS[reason], refusalBody(reason), { 'x-request-id': decision.requestId, ...(close && { connection: 'close' }) });
  }

  private countLimit(decision: AllowedDecision, reason: LimitReason, config: Config): void {
    this.runtime.metrics.limitRefusals.inc({ reason });
    const held = this.refusalLines.take(decision.peer, Date.now());
    if (held === undefined) {
      this.linesHeld('refused_by_limit').inc();
      return;
    }
    const user = loggedIdentity(decision.identity.user, config.logging.identity);
    this.runtime.logger.warn(
      { requestId: decision.requestId, peer: decision.peer, user, reason, status: REFUSALS[reason], ...(held > 0 && { heldBack: held }) },
      'refused by a limit',
    );
  }

  /** Ends the connections to the gateway (after draining). */
  close(): void {
    this.forwarder.close();
  }

  private judge(req: IncomingMessage, mode: Mode, upgrade: boolean, snapshot: Snapshot): Judged {
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

  /** Counts and logs a decision about to be acted on. */
  private record({ facts, decision, seconds }: Judged, snapshot: Snapshot): Decision {
    const { mode } = facts;
    const { metrics, logger } = this.runtime;
    this.decisionTime(mode).observe(seconds);
    for (const header of decision.stripped) this.strippedCount(header).inc();
    // Built only when a line is written: allowed requests log at debug, off by default.
    const base = () => ({ mode, requestId: decision.requestId, peer: decision.peer, method: facts.method, path: clip(pathOf(facts.target)) });
    if (decision.ok) {
      this.allowedCount(mode).inc();
      this.signedCount(decision.kid).inc();
      if (logger.isLevelEnabled('debug')) {
        const user = loggedIdentity(decision.identity.user, snapshot.config.logging.identity);
        logger.debug({ ...base(), user, client: decision.client, trustedBy: decision.trustedBy, scopes: decision.scopes }, 'allowed');
      }
    } else {
      if (decision.reason === 'identity_token_unknown_key') this.runtime.providerKeyMissed();
      metrics.decisions.inc({ mode, result: 'refused', reason: decision.reason });
      const held = this.refusalLines.take(decision.peer, Date.now());
      if (held === undefined) this.linesHeld('refused').inc();
      else
        logger.info(
          { ...base(), reason: decision.reason, status: decision.status, stage: decision.stage, detail: decision.detail, ...(held > 0 && { heldBack: held }) },
          'refused',
        );
    }
    return decision;
  }

  private observeUpstream(status: number, started: bigint): void {
    this.responseCount(status).inc();
    this.runtime.metrics.upstreamSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  private countUpstreamError(failure: ExchangeFailure, err: Error): UpstreamErrorKind {
    const kind = upstreamErrorKind(failure);
    this.runtime.metrics.upstreamErrors.inc({ kind });
    // Node's code where the failure is Node's own (a certificate the gateway's CA did not sign, say).
    this.runtime.logger.warn({ kind, failure, code: (err as NodeJS.ErrnoException).code, message: err.message }, 'upstream error');
    return kind;
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
