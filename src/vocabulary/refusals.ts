// Every refusal has a stable reason code (shown to clients as {"error": code}, used as a
// metric label and logged) and the status it maps to.
export const REFUSALS = {
  // the decision's refusals, by stage (STAGE_OF)
  untrusted_source: 403,
  bad_request: 400,
  too_many_headers: 431,
  forwarded_method_invalid: 403,
  forwarded_uri_invalid: 403,
  route_denied: 403,
  route_method_not_allowed: 405,
  identity_missing: 401,
  identity_duplicated: 401,
  identity_blank: 401,
  identity_too_long: 401,
  identity_invalid: 401,
  required_header_missing: 401,
  identity_token_missing: 401,
  identity_token_invalid: 401,
  identity_token_unknown_key: 401,
  identity_token_expired: 401,
  identity_token_rejected: 401,
  identity_token_mismatch: 401,
  identity_token_keys_unavailable: 503,
  user_not_allowed: 403,
  origin_not_allowed: 403,
  assertion_key_unavailable: 503,
  // the connection and the limits, applied by the I/O shell around an allowed decision
  request_timeout: 408,
  body_timeout: 408,
  body_too_large: 413,
  identity_request_limit: 429,
  route_rate_limited: 429,
  identity_websocket_limit: 429,
  upstream_busy: 503,
} as const;

export type ReasonCode = keyof typeof REFUSALS;

/** Refusals by a limit, after the decision allowed the request (proxy/limits.ts). */
export type LimitReason = Extract<
  ReasonCode,
  'body_timeout' | 'body_too_large' | 'identity_request_limit' | 'identity_websocket_limit' | 'route_rate_limited' | 'upstream_busy'
>;

/** The decision's stages, in the order a request passes them (decide.ts, README, docs). */
export const STAGES = ['source', 'request', 'route', 'identity', 'policy', 'assertion'] as const;
export type Stage = (typeof STAGES)[number];

/** The stage that refuses each decision reason; the other codes are the shell's limits. */
export const STAGE_OF = {
  untrusted_source: 'source',
  bad_request: 'request',
  too_many_headers: 'request',
  forwarded_method_invalid: 'request',
  forwarded_uri_invalid: 'request',
  route_denied: 'route',
  route_method_not_allowed: 'route',
  identity_missing: 'identity',
  identity_duplicated: 'identity',
  identity_blank: 'identity',
  identity_too_long: 'identity',
  identity_invalid: 'identity',
  required_header_missing: 'identity',
  identity_token_missing: 'identity',
  identity_token_invalid: 'identity',
  identity_token_unknown_key: 'identity',
  identity_token_expired: 'identity',
  identity_token_rejected: 'identity',
  identity_token_mismatch: 'identity',
  identity_token_keys_unavailable: 'identity',
  user_not_allowed: 'policy',
  origin_not_allowed: 'policy',
  assertion_key_unavailable: 'assertion',
} as const satisfies Partial<Record<ReasonCode, Stage>>;
export type DecisionReason = keyof typeof STAGE_OF;

export interface Refusal {
  readonly ok: false;
  readonly stage: Stage;
  readonly reason: DecisionReason;
  readonly status: (typeof REFUSALS)[DecisionReason];
  /** Operator-facing detail for the log; never sent to the client. */
  readonly detail?: string;
}

export function refuse(reason: DecisionReason, detail?: string): Refusal {
  return { ok: false, stage: STAGE_OF[reason], reason, status: REFUSALS[reason], detail };
}

/** The body a refused client sees: the code only, never an echoed header value. */
export function refusalBody(reason: ReasonCode): string {
  return `{"error":"${reason}"}`;
}
