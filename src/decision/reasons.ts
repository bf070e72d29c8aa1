// Every refusal has a stable reason code (shown to clients as {"error": code}, used as a
// metric label and logged) and the status it maps to.
export const REFUSALS = {
  // source
  untrusted_source: 403,
  // request shape
  bad_request: 400,
  too_many_headers: 431,
  forwarded_method_invalid: 403,
  forwarded_uri_invalid: 403,
  // identity
  identity_missing: 401,
  identity_duplicated: 401,
  identity_blank: 401,
  identity_too_long: 401,
  identity_invalid: 401,
  required_header_missing: 401,
  // policy
  user_not_allowed: 403,
  origin_not_allowed: 403,
  // signing
  assertion_key_unavailable: 503,
  // the connection and the limits, applied by the I/O shell around an allowed decision
  request_timeout: 408,
  body_timeout: 408,
  body_too_large: 413,
  identity_request_limit: 429,
  identity_websocket_limit: 429,
  upstream_busy: 503,
} as const;

export type ReasonCode = keyof typeof REFUSALS;
export type Stage = 'source' | 'request' | 'identity' | 'policy' | 'assertion';

export interface Refusal {
  readonly ok: false;
  readonly stage: Stage;
  readonly reason: ReasonCode;
  readonly status: (typeof REFUSALS)[ReasonCode];
  /** Operator-facing detail for the log; never sent to the client. */
  readonly detail?: string;
}

export function refuse(stage: Stage, reason: ReasonCode, detail?: string): Refusal {
  return { ok: false, stage, reason, status: REFUSALS[reason], detail };
}

/** The body a refused client sees: the code only, never an echoed header value. */
export function refusalBody(reason: ReasonCode): string {
  return `{"error":"${reason}"}`;
}
