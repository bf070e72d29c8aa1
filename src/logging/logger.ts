// pino JSON logs. Identities are logged as configured (plain, hashed, or not at all).
import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';

export type { Logger };

export function createLogger(level: Config['logging']['level'], destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'trusted-proxy-sidecar' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ sync: false }),
  );
}

export function loggedIdentity(user: string, mode: Config['logging']['identity']): string | undefined {
  if (mode === 'omit') return undefined;
  if (mode === 'hash') return `sha256:${createHash('sha256').update(user).digest('hex').slice(0, 16)}`;
  return user;
}
