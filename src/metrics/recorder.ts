// What the request handler records: every decision (its time, the headers it stripped,
// allowed or refused by which reason, the refusal's log line within its peer's budget),
// every refusal by a limit, and the gateway's answers and failures. The metric children an
// allowed request touches are made once per label value (perKey) and batched: at
// saturation prom-client's label hashing on every increment was a measured share of the CPU
// per request (docs/decisions/0002-batched-metric-children.md).
import type { Config } from '../config/schema.js';
import type { AllowedDecision, Decision } from '../decision/decide.js';
import { exchangeFailure, upstreamErrorKind, type UpstreamErrorKind } from '../gateway/errors.js';
import { clip, LineBudget, REFUSAL_LINES } from '../logging/line-budget.js';
import { loggedIdentity, type Logger } from '../logging/logger.js';
import { pathOf } from '../request/request.js';
import type { Mode, RequestFacts } from '../vocabulary/facts.js';
import { REFUSALS, type LimitReason } from '../vocabulary/refusals.js';
import { perKey, statusClass, type Metrics } from './metrics.js';

/** A decision and what it was made from, not yet recorded or acted on. */
export interface Decided {
  readonly facts: RequestFacts;
  readonly decision: Decision;
  readonly seconds: number;
}

export class Recorder {
  private readonly decisionTime;
  private readonly allowedCount;
  private readonly strippedCount;
  private readonly signedCount;
  private readonly responseCount;
  private readonly linesHeld;
  /** Refusal lines each peer may write (logging/line-budget.ts). */
  private readonly refusalLines = new LineBudget(REFUSAL_LINES, Date.now());

  constructor(
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.decisionTime = perKey((mode: Mode) => metrics.decisionSeconds.labels(mode));
    this.allowedCount = perKey((mode: Mode) => metrics.batched(metrics.decisions, { mode, result: 'allowed', reason: 'allowed' }));
    this.strippedCount = perKey((header: string) => metrics.batched(metrics.headersStripped, { header }));
    this.signedCount = perKey((kid: string) => metrics.batched(metrics.assertionsSigned, { kid }));
    this.responseCount = perKey((status: number) => metrics.batched(metrics.upstreamResponses, { class: statusClass(status) }));
    this.linesHeld = perKey((line: 'refused' | 'refused_by_limit') => metrics.logLinesHeld.labels(line));
  }

  /** Counts and logs a decision about to be acted on. */
  decision({ facts, decision, seconds }: Decided, logging: Config['logging']): void {
    const { mode } = facts;
    this.decisionTime(mode).observe(seconds);
    for (const header of decision.stripped) this.strippedCount(header).inc();
    // Built only when a line is written: allowed requests log at debug, off by default.
    const base = () => ({ mode, requestId: decision.requestId, peer: decision.peer, method: facts.method, path: clip(pathOf(facts.target)) });
    if (decision.ok) {
      this.allowedCount(mode).inc();
      this.signedCount(decision.kid).inc();
      if (this.logger.isLevelEnabled('debug')) {
        const user = loggedIdentity(decision.identity.user, logging.identity);
        this.logger.debug({ ...base(), user, client: decision.client, trustedBy: decision.trustedBy, scopes: decision.scopes }, 'allowed');
      }
      return;
    }
    this.metrics.decisions.inc({ mode, result: 'refused', reason: decision.reason });
    const held = this.refusalLines.take(decision.peer, Date.now());
    if (held === undefined) this.linesHeld('refused').inc();
    else
      this.logger.info(
        { ...base(), reason: decision.reason, status: decision.status, stage: decision.stage, detail: decision.detail, ...(held > 0 && { heldBack: held }) },
        'refused',
      );
  }

  /** An allowed request refused by a limit (the shell's, after the decision). */
  limitRefusal(decision: AllowedDecision, reason: LimitReason, logging: Config['logging']): void {
    this.metrics.limitRefusals.inc({ reason });
    const held = this.refusalLines.take(decision.peer, Date.now());
    if (held === undefined) {
      this.linesHeld('refused_by_limit').inc();
      return;
    }
    const user = loggedIdentity(decision.identity.user, logging.identity);
    this.logger.warn(
      { requestId: decision.requestId, peer: decision.peer, user, reason, status: REFUSALS[reason], ...(held > 0 && { heldBack: held }) },
      'refused by a limit',
    );
  }

  /** The gateway's final answer began, `started` (process.hrtime.bigint) after the exchange did. */
  upstreamResponse(status: number, started: bigint): void {
    this.responseCount(status).inc();
    this.metrics.upstreamSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** An exchange with the gateway failed; the kind decides the answer (504 for a timeout, else 502). */
  upstreamError(err: Error): UpstreamErrorKind {
    const failure = exchangeFailure(err);
    const kind = upstreamErrorKind(failure);
    this.metrics.upstreamErrors.inc({ kind });
    // Node's code where the failure is Node's own (a certificate the gateway's CA did not sign, say).
    this.logger.warn({ kind, failure, code: (err as NodeJS.ErrnoException).code, message: err.message }, 'upstream error');
    return kind;
  }
}
