// Why an exchange with the gateway failed: one error class whose `failure` is a closed
// union, made here and switched on exhaustively where the failure is answered and counted.
// Node's own socket errors (a refused or reset connection) are read into the same union.

export type ExchangeFailure =
  /** The gateway refused the connection. */
  | 'refused'
  /** The gateway reset the connection, or it broke while a request was written. */
  | 'reset'
  /** The gateway closed the connection before its answer was complete. */
  | 'closed_early'
  | 'connect_timeout'
  /** No answer head within the upstream timeout. */
  | 'answer_timeout'
  /** The answer began, then nothing more came within the upstream timeout. */
  | 'response_stalled'
  /** The gateway's answer is malformed (response-parser.ts). */
  | 'bad_response'
  /** The request head holds bytes the gateway may not be sent (request-head.ts). */
  | 'bad_request'
  /** The client stopped sending its request body (limits.clientStallTimeoutSeconds). */
  | 'request_body_stalled'
  /** The client's request body passed limits.maxRequestBodyBytes. */
  | 'request_body_too_large'
  | 'other';

export class ExchangeError extends Error {
  override readonly name = 'ExchangeError';
  constructor(
    readonly failure: ExchangeFailure,
    message: string,
  ) {
    super(message);
  }
}

const SOCKET_FAILURES: Readonly<Record<string, ExchangeFailure>> = { ECONNREFUSED: 'refused', ECONNRESET: 'reset', EPIPE: 'reset' };

/** What an exchange ended with, whether the sidecar's own error or Node's. */
export function exchangeFailure(err: Error): ExchangeFailure {
  if (err instanceof ExchangeError) return err.failure;
  return SOCKET_FAILURES[(err as NodeJS.ErrnoException).code ?? ''] ?? 'other';
}

/** The `kind` label of trusted_proxy_upstream_errors_total (docs/metrics.md). */
export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'bad_response' | 'bad_request' | 'other';

/**
 * The metric's kind of a failure. A request body's failures are the client's: the HTTP path
 * answers them as limits (408, 413) before anything is counted here, and an upgrade has no
 * body, so they fall under `other` only if that ever changes.
 */
export function upstreamErrorKind(failure: ExchangeFailure): UpstreamErrorKind {
  switch (failure) {
    case 'refused':
      return 'refused';
    case 'reset':
    case 'closed_early':
      return 'reset';
    case 'connect_timeout':
    case 'answer_timeout':
    case 'response_stalled':
      return 'timeout';
    case 'bad_response':
      return 'bad_response';
    case 'bad_request':
      return 'bad_request';
    case 'request_body_stalled':
    case 'request_body_too_large':
    case 'other':
      return 'other';
  }
}
