// The thin I/O shell around the decision: turn a request into facts, decide, record the
// decision, then either forward (inline), answer (forward-auth) or refuse.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { decide, upstreamHeaders, type AllowedDecision, type Decision, type Mode, type RequestFacts } from '../decision/decide.js';
import { refusalBody } from '../decision/reasons.js';
import { loggedIdentity } from '../logging/logger.js';
import { perKey, statusClass } from '../metrics/metrics.js';
import { isAllowed } from '../policy/policy.js';
import type { Runtime } from '../runtime/runtime.js';
import { pathOf } from '../sanitise/forwarded.js';
import { UpstreamPool } from './agent.js';
import { upstreamErrorKind, type UpstreamErrorKind } from './errors.js';
import { forward, hasBody } from './forward.js';
import { rejectUpgrade, sendJson } from './respond.js';
import { relayUpgrade } from './upgrade.js';
import { WebSocketTracker } from './websockets.js';

const TIMEOUT_BODY = '{"error":"upstream_timeout"}';
const UNAVAILABLE_BODY = '{"error":"upstream_unavailable"}';

export class RequestHandler {
  readonly websockets: WebSocketTracker;
  private readonly pool: UpstreamPool;
  // Metric children for what every allowed request records.
  private readonly decisionTime;
  private readonly allowedCount;
  private readonly strippedCount;
  private readonly signedCount;
  private readonly responseCount;

  constructor(private readonly runtime: Runtime) {
    const { metrics } = runtime;
    this.decisionTime = perKey((mode: Mode) => metrics.decisionSeconds.labels(mode));
    this.allowedCount = perKey((mode: Mode) => metrics.batched(metrics.decisions, { mode, result: 'allowed', reason: 'allowed' }));
    this.strippedCount = perKey((header: string) => metrics.batched(metrics.headersStripped, { header }));
    this.signedCount = perKey((kid: string) => metrics.batched(metrics.assertionsSigned, { kid }));
    this.responseCount = perKey((status: number) => metrics.batched(metrics.upstreamResponses, { class: statusClass(status) }));
    this.pool = new UpstreamPool(runtime.config.upstream);
    this.websockets = new WebSocketTracker(runtime.metrics);
    // A reload that narrows the allow lists ends WebSockets of users it no longer admits.
    runtime.onRulesChange((rules) => {
      this.pool.update(rules.config.upstream);
      this.revoke((identity) => isAllowed(identity, rules.policy), 'config reload');
    });
    runtime.trust.onChange((set) => this.revoke((_i, peer) => set.lookup(peer).trusted, 'trusted set change'));
  }

  onRequest(req: IncomingMessage, res: ServerResponse): void {
    const mode = this.modeOf(req);
    const decision = this.decide(req, mode);
    if (!decision.ok) {
      // A refused request's body is never read: close the connection rather than drain it.
      const headers: Record<string, string> = { 'x-request-id': decision.requestId };
      if (hasBody(req)) headers['connection'] = 'close';
      sendJson(res, refusalStatus(decision.status, mode), refusalBody(decision.reason), headers);
      return;
    }
    if (mode === 'forward-auth') {
      sendJson(res, 200, '{"result":"allowed"}', this.grantHeaders(decision));
      return;
    }
    const { url, timeoutSeconds } = this.runtime.config.upstream;
    const started = process.hrtime.bigint();
    // Read per request, so a reloaded upstream URL or timeout applies at once.
    forward(req, res, upstreamHeaders(decision, this.runtime.rules), { dispatcher: this.pool.dispatcher, origin: url, timeoutMs: timeoutSeconds * 1000 }, {
      response: (status) => this.observeUpstream(status, started),
      failed: (err) => {
        const kind = this.countUpstreamError(err);
        sendJson(res, kind === 'timeout' ? 504 : 502, kind === 'timeout' ? TIMEOUT_BODY : UNAVAILABLE_BODY);
      },
    });
  }

  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const mode = this.modeOf(req);
    const decision = this.decide(req, mode);
    if (!decision.ok) {
      rejectUpgrade(socket, refusalStatus(decision.status, mode), refusalBody(decision.reason), { 'x-request-id': decision.requestId });
      return;
    }
    // Caddy's forward_auth passes a client's Upgrade on to the auth endpoint: answer it
    // like any sub-request (the forward-auth path is never proxied) and close.
    if (mode === 'forward-auth') {
      rejectUpgrade(socket, 200, '{"result":"allowed"}', this.grantHeaders(decision));
      return;
    }
    const { url, connectTimeoutSeconds, timeoutSeconds } = this.runtime.config.upstream;
    const { maxWebSocketLifetimeSeconds } = this.runtime.config.listen;
    const started = process.hrtime.bigint();
    const target = { url, connectTimeoutMs: connectTimeoutSeconds * 1000, timeoutMs: timeoutSeconds * 1000 };
    relayUpgrade(req, socket, head, upstreamHeaders(decision, this.runtime.rules), target, {
      response: (status) => this.observeUpstream(status, started),
      switched: (upstream) => this.websockets.add(socket as Socket, upstream, decision.identity, decision.peer, maxWebSocketLifetimeSeconds),
      failed: (err) => {
        const kind = this.countUpstreamError(err);
        rejectUpgrade(socket, kind === 'timeout' ? 504 : 502, kind === 'timeout' ? TIMEOUT_BODY : UNAVAILABLE_BODY);
      },
    });
  }

  private modeOf(req: IncomingMessage): Mode {
    const { forwardAuth } = this.runtime.config;
    return forwardAuth.enabled && pathOf(req.url ?? '/') === forwardAuth.path ? 'forward-auth' : 'inline';
  }

  /** Stops the upstream connection pool (after draining). */
  close(): void {
    this.pool.close();
  }

  private decide(req: IncomingMessage, mode: Mode): Decision {
    const started = process.hrtime.bigint();
    const facts: RequestFacts = {
      mode,
      peer: req.socket.remoteAddress ?? '',
      tls: (req.socket as TLSSocket).encrypted === true,
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      rawHeaders: req.rawHeaders,
    };
    const decision = decide(facts, this.runtime.context());
    const { metrics, logger } = this.runtime;
    this.decisionTime(mode).observe(Number(process.hrtime.bigint() - started) / 1e9);
    for (const header of decision.stripped) this.strippedCount(header).inc();
    // Built only when a line is written: allowed requests log at debug, off by default.
    const base = () => ({ mode, requestId: decision.requestId, peer: decision.peer, method: facts.method, path: pathOf(facts.target) });
    if (decision.ok) {
      this.allowedCount(mode).inc();
      this.signedCount(decision.kid).inc();
      if (logger.isLevelEnabled('debug')) {
        const user = loggedIdentity(decision.identity.user, this.runtime.config.logging.identity);
        logger.debug({ ...base(), user, client: decision.client, trustedBy: decision.trustedBy, scopes: decision.scopes }, 'allowed');
      }
    } else {
      metrics.decisions.inc({ mode, result: 'refused', reason: decision.reason });
      logger.info({ ...base(), reason: decision.reason, status: decision.status, stage: decision.stage, detail: decision.detail }, 'refused');
    }
    return decision;
  }

  /** Forward-auth answers carry what the front proxy copies onto the request it forwards. */
  private grantHeaders(decision: AllowedDecision): Record<string, string> {
    const { gateway, assertion } = this.runtime.config;
    const headers: Record<string, string> = { [assertion.header]: decision.assertion, 'x-request-id': decision.requestId };
    if (gateway.userHeader) headers[gateway.userHeader] = decision.identity.userRaw;
    if (gateway.scopesHeader) headers[gateway.scopesHeader] = decision.scopes.join(',');
    return headers;
  }

  private observeUpstream(status: number, started: bigint): void {
    this.responseCount(status).inc();
    this.runtime.metrics.upstreamSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  private countUpstreamError(err: Error): UpstreamErrorKind {
    const kind = upstreamErrorKind(err);
    this.runtime.metrics.upstreamErrors.inc({ kind });
    this.runtime.logger.warn({ kind, code: (err as NodeJS.ErrnoException).code }, 'upstream error');
    return kind;
  }

  private revoke(keep: Parameters<WebSocketTracker['revoke']>[0], why: string): void {
    const closed = this.websockets.revoke(keep);
    if (closed > 0) this.runtime.logger.info({ closed, why }, 'closed WebSockets no longer allowed');
  }
}

/**
 * nginx auth_request turns any answer but 2xx, 401 and 403 into a 500 for the client, so a
 * forward-auth refusal is always one of those two; the body still names the reason.
 */
function refusalStatus(status: number, mode: Mode): number {
  return mode === 'forward-auth' && status !== 401 ? 403 : status;
}
