// Upstream failures by kind, for the metric, the log and the answer (502 or 504). Both
// paths fail with Node's socket errors or the codes named here.
import { BAD_RESPONSE, CLOSED_EARLY } from './response-parser.js';

export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'other';

const CONNECT_TIMEOUT = 'UPSTREAM_CONNECT_TIMEOUT';
const ANSWER_TIMEOUT = 'UPSTREAM_ANSWER_TIMEOUT';
const BODY_STALLED = 'UPSTREAM_BODY_TIMEOUT';

const KINDS: Record<string, UpstreamErrorKind> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  // The gateway closed the connection before the response was complete.
  [CLOSED_EARLY]: 'reset',
  [CONNECT_TIMEOUT]: 'timeout',
  [ANSWER_TIMEOUT]: 'timeout',
  [BODY_STALLED]: 'timeout',
  [BAD_RESPONSE]: 'other',
};

export function upstreamErrorKind(err: Error): UpstreamErrorKind {
  return KINDS[(err as NodeJS.ErrnoException).code ?? ''] ?? 'other';
}

export function connectTimeout(): Error {
  return Object.assign(new Error('upstream connect timed out'), { code: CONNECT_TIMEOUT });
}

/** No response head within the timeout. */
export function answerTimeout(): Error {
  return Object.assign(new Error('upstream timed out'), { code: ANSWER_TIMEOUT });
}

/** The response began, then nothing more came within the timeout. */
export function bodyTimeout(): Error {
  return Object.assign(new Error('upstream stopped sending the response body'), { code: BODY_STALLED });
}
