// The thin I/O shell around the decision: turn a request into facts, decide, record the
// decision, then either forward (inline), answer (forward-auth) or refuse.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { decide, upstreamHeaders, type AllowedDecision, type Decision, type Mode, type RequestFacts } from '../decision/decide.js';
import { refusalBody } from '../decision/reasons.js';
import { loggedIdentity } from '../logging/logger.js';
import { perKey, statusClass } from '../metrics/metrics.js';
import { isAllowed } from '../policy/policy.js';
import type { Runtime } from '../runtime/runtime.js';
import { pathOf } from '../sanitise/forwarded.js';
import { createUpstreamAgent } from './agent.js';
import { rejectUpgrade, sendJson } from './respond.js';
import { WebSocketTracker } from './websockets.js';

const UPSTREAM_TIMEOUT = 'ETIMEDOUT_UPSTREAM';

export class RequestHandler {
  readonly websockets: WebSocketTracker;
  private readonly agent: http.Agent;
  private readonly proxy;
  // Metric children for what every allowed request records.
  private readonly decisionTime;
  private readonly allowedCount;
  private readonly strippedCount;
  private readonly signedCount;
  private readonly responseCount;

  constructor(private readonly runtime: Runtime) {
    const { upstream } = runtime.config;
    const { metrics } = runtime;
    this.decisionTime = perKey((mode: Mode) => metrics.decisionSeconds.labels(mode));
    this.allowedCount = perKey((mode: Mode) => metrics.decisions.labels(mode, 'allowed', 'allowed'));
    this.strippedCount = perKey((header: string) => metrics.headersStripped.labels(header));
    this.signedCount = perKey((kid: string) => metrics.assertionsSigned.labels(kid));
    this.responseCount = perKey((status: number) => metrics.upstreamResponses.labels(statusClass(status)));
    this.agent = createUpstreamAgent(upstream);
    // toProxy: forward the request target byte for byte. http-proxy otherwise re-parses it
    // as a URL (resolving `..`, re-encoding), and the gateway would be sent another path
    // than the one the assertion binds.
    this.proxy = createProxyServer({
      agent: this.agent,
      xfwd: false,
      ws: true,
      toProxy: true,
      connectTimeout: upstream.connectTimeoutSeconds * 1000,
    });
    this.websockets = new WebSocketTracker(runtime.metrics);
    // Without a listener http-proxy-3 throws the socket errors it has no callback for (a
    // client resetting an open WebSocket), which would end the process.
    this.proxy.on('error', (err, _req, res) => {
      runtime.logger.debug({ code: (err as NodeJS.ErrnoException).code }, 'client connection error');
      res.destroy();
    });
    this.proxy.on('proxyReq', (proxyReq, req) => this.armUpstream(proxyReq, req));
    this.proxy.on('proxyReqWs', (proxyReq, req, socket) => this.armUpgrade(proxyReq, req, socket as Socket));
    this.proxy.on('proxyRes', (proxyRes, req, res) => {
      // The upstream's Connection and Keep-Alive describe the pooled upstream hop; copied
      // to the client they would keep open a connection the client asked to close. Headers
      // the upstream's Connection names belong to that hop too (RFC 9110, 7.6.1).
      for (const name of String(proxyRes.headers['connection'] ?? '').split(',')) delete proxyRes.headers[name.trim().toLowerCase()];
      proxyRes.headers['connection'] = (res as ServerResponse).shouldKeepAlive ? 'keep-alive' : 'close';
      delete proxyRes.headers['keep-alive'];
      this.observeUpstream(proxyRes.statusCode ?? 502, req);
    });
    // A reload that narrows the allow lists ends WebSockets of users it no longer admits.
    runtime.onRulesChange((rules) => {
      this.agent.maxSockets = rules.config.upstream.maxSockets;
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
    req.headers = upstreamHeaders(decision, this.runtime.rules) as IncomingMessage['headers'];
    this.proxy.web(req, res, this.upstreamOptions(), (err) => this.upstreamFailed(err, res));
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
    (req as UpgradeRequest).allowed = decision;
    req.headers = upstreamHeaders(decision, this.runtime.rules) as IncomingMessage['headers'];
    this.proxy.ws(req, socket, head, this.upstreamOptions(), (err) => {
      const kind = this.countUpstreamError(err);
      if (kind === 'timeout') rejectUpgrade(socket, 504, '{"error":"upstream_timeout"}');
      else rejectUpgrade(socket, 502, '{"error":"upstream_unavailable"}');
    });
  }

  /** Per request, so a reloaded upstream URL or connect timeout applies at once. */
  private upstreamOptions() {
    const { url, connectTimeoutSeconds } = this.runtime.config.upstream;
    return { target: url, connectTimeout: connectTimeoutSeconds * 1000 };
  }

  private modeOf(req: IncomingMessage): Mode {
    const { forwardAuth } = this.runtime.config;
    return forwardAuth.enabled && pathOf(req.url ?? '/') === forwardAuth.path ? 'forward-auth' : 'inline';
  }

  /** Stops the upstream connection pool (after draining). */
  close(): void {
    this.agent.destroy();
    this.proxy.close();
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

  private armUpstream(proxyReq: http.ClientRequest, req: IncomingMessage): void {
    (req as TimedRequest).upstreamStarted = process.hrtime.bigint();
    this.limitWait(proxyReq);
  }

  /** Bounds the wait for the response (or the 101); http-proxy-3 clears it on an upgraded socket. */
  private limitWait(proxyReq: http.ClientRequest): void {
    proxyReq.setTimeout(this.runtime.config.upstream.timeoutSeconds * 1000, () => {
      proxyReq.destroy(Object.assign(new Error('upstream timed out'), { code: UPSTREAM_TIMEOUT }));
    });
  }

  private armUpgrade(proxyReq: http.ClientRequest, req: IncomingMessage, client: Socket): void {
    const allowed = (req as UpgradeRequest).allowed;
    this.limitWait(proxyReq);
    proxyReq.once('upgrade', (_res, upstream: Socket) => {
      this.observeUpstream(101, req);
      if (allowed) {
        this.websockets.add(client, upstream, allowed.identity, allowed.peer, this.runtime.config.listen.maxWebSocketLifetimeSeconds);
      }
    });
  }

  private observeUpstream(status: number, req: IncomingMessage): void {
    const { metrics } = this.runtime;
    this.responseCount(status).inc();
    const started = (req as TimedRequest).upstreamStarted;
    if (started !== undefined) metrics.upstreamSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  private upstreamFailed(err: Error, res: ServerResponse): void {
    const kind = this.countUpstreamError(err);
    if (kind === 'timeout') sendJson(res, 504, '{"error":"upstream_timeout"}');
    else sendJson(res, 502, '{"error":"upstream_unavailable"}');
  }

  private countUpstreamError(err: Error): string {
    const code = (err as NodeJS.ErrnoException).code;
    const kind =
      code === 'ECONNREFUSED'
        ? 'refused'
        : code === UPSTREAM_TIMEOUT || code === 'ECONNECT_TIMEOUT'
          ? 'timeout'
          : code === 'ECONNRESET' || code === 'EPIPE'
            ? 'reset'
            : 'other';
    this.runtime.metrics.upstreamErrors.inc({ kind });
    this.runtime.logger.warn({ kind, code }, 'upstream error');
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

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

type UpgradeRequest = IncomingMessage & { allowed?: AllowedDecision };
type TimedRequest = IncomingMessage & { upstreamStarted?: bigint };
