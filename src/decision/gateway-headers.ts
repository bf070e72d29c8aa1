// The gateway-header contract: what the sidecar tells the gateway of a request it allowed.
import type { Config } from '../config/schema.js';
import { forwardableClient } from '../request/forwarded.js';
import type { AllowedDecision } from './decide.js';
import type { Rules } from './rules.js';

/** What the gateway is told of an allowed request's identity, in both modes (an allowed decision is one). */
export interface Grant {
  requestId: string;
  /** The user as received (gateway.userHeader). */
  identity: { userRaw: string };
  /** A machine route's request carries no user: the gateway must not take it for one. */
  route?: string | undefined;
  scopes: readonly string[];
  assertion: string;
}

/** The forwarded facts the gateway is told of a request, besides its identity. */
export interface ForwardedFacts {
  /** The attributed client address; not sent when it is loopback or unparsable. */
  client: string;
  proto: 'http' | 'https';
  host: string | undefined;
}

/**
 * The gateway-header contract, the one place that says what the sidecar sets on a request
 * to the gateway (flat header lines, lower-case names): the forwarded facts (inline only:
 * in forward-auth mode the front proxy sends its own), then the request id, the user (none
 * on a machine route), the scopes and the assertion. Forward-auth answers carry the identity part for the front
 * proxy to copy; `doctor` and `gateway-config` read the names from it. Appends to `out`
 * when given (inline forwarding's list, with no copy on the hot path).
 */
export function gatewayHeaders(config: Pick<Config, 'gateway' | 'assertion'>, grant: Grant, forwarded?: ForwardedFacts, out: string[] = []): string[] {
  if (forwarded) {
    if (forwardableClient(forwarded.client)) out.push('x-forwarded-for', forwarded.client);
    out.push('x-forwarded-proto', forwarded.proto);
    if (forwarded.host !== undefined) out.push('x-forwarded-host', forwarded.host);
  }
  out.push('x-request-id', grant.requestId);
  if (config.gateway.userHeader && grant.route === undefined) out.push(config.gateway.userHeader, grant.identity.userRaw);
  if (config.gateway.scopesHeader) out.push(config.gateway.scopesHeader, grant.scopes.join(','));
  out.push(config.assertion.header, grant.assertion);
  return out;
}

/**
 * The header lines the gateway receives inline, flat as Node's `rawHeaders` (name, value,
 * …, names lower-case): the client's own lines less everything the sidecar owns, then the
 * sidecar's (gatewayHeaders). Every name the sidecar sets is owned or hop-by-hop, so the
 * client's copies were stripped and each value here is the only one. undici and Node's
 * client send a flat list as it is (no object to build and walk), and a name like
 * `__proto__` stays plain data.
 */
export function upstreamHeaders(allowed: AllowedDecision, rules: Rules): string[] {
  const { forward } = allowed.inbound;
  const out: string[] = [];
  for (let i = 0; i < forward.length; i += 2) {
    if (forward[i] !== 'x-request-id') out.push(forward[i]!, forward[i + 1]!);
  }
  // On a machine route the caller's Authorization is the gateway's own credential (a hook
  // token), not the provider's token the sidecar checks for users: it passes as it came.
  if (allowed.route !== undefined && rules.machineAuthorization)
    for (const value of allowed.inbound.read.get('authorization') ?? []) out.push('authorization', value);
  gatewayHeaders(rules.config, allowed, allowed, out);
  if (allowed.upgrade !== undefined) out.push('connection', 'upgrade', 'upgrade', allowed.upgrade);
  return out;
}
