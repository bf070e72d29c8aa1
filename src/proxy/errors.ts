// Upstream failures by kind, for the metric, the log and the answer (502 or 504). The
// HTTP path fails with undici's errors, the WebSocket path with Node's and its own.
export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'other';

const CONNECT_TIMEOUT = 'UND_ERR_CONNECT_TIMEOUT';
const ANSWER_TIMEOUT = 'UND_ERR_HEADERS_TIMEOUT';

const KINDS: Record<string, UpstreamErrorKind> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  // undici: the gateway closed the connection before the response was complete.
  UND_ERR_SOCKET: 'reset',
  [CONNECT_TIMEOUT]: 'timeout',
  [ANSWER_TIMEOUT]: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
};

export function upstreamErrorKind(err: Error): UpstreamErrorKind {
  return KINDS[(err as NodeJS.ErrnoException).code ?? ''] ?? 'other';
}

/** The WebSocket path's timeouts, named as undici names its own so both map alike. */
export function connectTimeout(): Error {
  return Object.assign(new Error('upstream connect timed out'), { code: CONNECT_TIMEOUT });
}

export function answerTimeout(): Error {
  return Object.assign(new Error('upstream timed out'), { code: ANSWER_TIMEOUT });
}
