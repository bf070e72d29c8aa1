// Which inbound header names the sidecar owns. Names are compared after lower-casing and
// folding `_` and `.` into `-`, so `X_Auth_Request_Email` and `x.auth.request.email` are
// the same header as `x-auth-request-email` (frameworks downstream may fold them alike).
import type { Config } from '../config/schema.js';

export const ALWAYS_PROTECTED = ['x-forwarded-', 'forwarded', 'x-real-ip'] as const;

export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
]);

export function normaliseName(lowerName: string): string {
  return lowerName.replace(/[_.]/g, '-');
}

/** A compiled matcher: returns the protected name that covers a header, or undefined. */
export interface ProtectedNames {
  readonly prefixes: readonly string[];
  match(lowerName: string): string | undefined;
}

export function protectedNames(config: Config): ProtectedNames {
  const names = [
    config.identity.userHeader,
    config.identity.emailHeader,
    config.identity.groupsHeader,
    // The provider's token is the sidecar's to check, not the gateway's to reuse.
    config.identity.token.mode === 'off' ? '' : config.identity.token.header,
    config.assertion.header,
    config.gateway.userHeader,
    config.gateway.scopesHeader,
    ...ALWAYS_PROTECTED,
    ...config.sanitise.extraNames,
    ...config.sanitise.extraPrefixes,
  ];
  const prefixes = [...new Set(names.filter(Boolean).map(normaliseName))];
  return {
    prefixes,
    match(lowerName) {
      const n = lowerName.includes('_') || lowerName.includes('.') ? normaliseName(lowerName) : lowerName;
      for (const p of prefixes) if (n.startsWith(p)) return p;
      return undefined;
    },
  };
}
