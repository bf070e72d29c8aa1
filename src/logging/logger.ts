// pino JSON logs. Identities are logged as configured (plain, hashed, or not at all).
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';

export type { Logger };

export function createLogger(level: Config['logging']['level'], destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'trusted-proxy-sidecar' }, timestamp: pino.stdTimeFunctions.isoTime },
    // Asynchronous, but bounded: if stdout's reader falls behind (a flood of refusals),
    // lines are dropped past 16 MiB rather than the buffer growing until the pod is killed.
    destination ?? pino.destination({ sync: false, maxLength: 16 * 1024 * 1024 }),
  );
}

export function loggedIdentity(user: string, mode: Config['logging']['identity']): string | undefined {
  if (mode === 'omit') return undefined;
  if (mode === 'hash') return `sha256:${createHash('sha256').update(user).digest('hex').slice(0, 16)}`;
  return user;
}
