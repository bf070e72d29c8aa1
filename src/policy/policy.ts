// The policy stage: may this user pass, and with which gateway scopes.
import type { Config } from '../config/schema.js';
import { refuse, type Refusal } from '../vocabulary/refusals.js';
import type { Identity } from '../identity/identity.js';
import { DUPLICATED, singleValue } from '../request/headers.js';

export interface Policy {
  readonly allowUsers: ReadonlySet<string>;
  readonly allowGroups: ReadonlySet<string>;
  readonly allowEmailDomains: ReadonlySet<string>;
  readonly defaultScopes: readonly string[];
  readonly scopesByGroup: ReadonlyMap<string, readonly string[]>;
  readonly allowedOrigins: ReadonlySet<string>;
}

export function compilePolicy(config: Config): Policy {
  return {
    // Emails compare case-insensitively, opaque user ids exactly.
    allowUsers: new Set(config.identity.allowUsers.map(userKey)),
    allowGroups: new Set(config.identity.allowGroups),
    allowEmailDomains: new Set(config.identity.allowEmailDomains),
    defaultScopes: config.gateway.scopes.default,
    scopesByGroup: new Map(Object.entries(config.gateway.scopes.byGroup)),
    allowedOrigins: new Set(config.listen.allowedOrigins.map((o) => new URL(o).origin)),
  };
}

/**
 * The policy stage: the user must be allowed, and where the Origin check applies (a
 * WebSocket upgrade, or any forward-auth sub-request, which cannot show whether the
 * original was one: proxies drop Upgrade) a browser's Origin must be allowed too.
 */
export function checkPolicy(
  identity: Identity,
  checkOriginToo: boolean,
  read: Map<string, string[]>,
  policy: Policy,
): { ok: true; scopes: readonly string[] } | Refusal {
  if (!isAllowed(identity, policy)) return refuse('user_not_allowed', identity.user);
  if (checkOriginToo) {
    const origin = singleValue(read, 'origin');
    const bad = origin === DUPLICATED ? refuse('origin_not_allowed', 'duplicate Origin') : checkOrigin(origin, policy);
    if (bad) return bad;
  }
  return { ok: true, scopes: scopesFor(identity, policy) };
}

function userKey(user: string): string {
  return user.includes('@') ? user.toLowerCase() : user;
}

/**
 * With no allow list set, every authenticated user passes. Otherwise the user passes when
 * any one list admits them (a listed user, a listed group, or an email in a listed domain).
 */
export function isAllowed(identity: Identity, policy: Policy): boolean {
  const { allowUsers, allowGroups, allowEmailDomains } = policy;
  if (allowUsers.size === 0 && allowGroups.size === 0 && allowEmailDomains.size === 0) return true;
  if (allowUsers.has(userKey(identity.user))) return true;
  if (identity.email !== undefined && allowUsers.has(identity.email.toLowerCase())) return true;
  for (const g of identity.groups) if (allowGroups.has(g)) return true;
  const email = identity.email ?? (identity.user.includes('@') ? identity.user : undefined);
  if (email !== undefined && allowEmailDomains.has(email.slice(email.lastIndexOf('@') + 1).toLowerCase())) return true;
  return false;
}

/** Scopes from the user's mapped groups (their union), or the default when none is mapped. */
export function scopesFor(identity: Identity, policy: Policy): readonly string[] {
  let scopes: Set<string> | undefined;
  for (const g of identity.groups) {
    const mapped = policy.scopesByGroup.get(g);
    if (mapped) for (const s of mapped) (scopes ??= new Set()).add(s);
  }
  return scopes ? [...scopes] : policy.defaultScopes;
}

/**
 * Cross-site WebSocket hijacking guard: when an allow list is set, a browser's Origin must
 * be on it. Requests without Origin are not from a browser page and pass this check.
 */
export function checkOrigin(origin: string | undefined, policy: Policy): Refusal | undefined {
  if (policy.allowedOrigins.size === 0 || origin === undefined) return undefined;
  let normalised: string;
  try {
    normalised = new URL(origin).origin;
  } catch {
    return refuse('origin_not_allowed', 'malformed Origin');
  }
  return policy.allowedOrigins.has(normalised) ? undefined : refuse('origin_not_allowed', normalised);
}
