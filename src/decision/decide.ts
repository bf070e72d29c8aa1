// The decision, as a pipeline of pure stages: source → identity → policy → sanitise →
// assertion. It reads only its inputs (no sockets, clock or randomness of its own), so
// inline proxying and forward-auth share it and tests can drive it directly.
import type { AssertionClaims } from '../assertion/claims.js';
import { targetUri } from '../assertion/claims.js';
import type { AssertionSigner } from '../assertion/sign.js';
import type { Config } from '../config/schema.js';
import type { Identity } from '../identity/identity.js';
import { readIdentity } from '../identity/identity.js';
import { checkOrigin, isAllowed, scopesFor } from '../policy/policy.js';
import {
  clientAddress,
  forwardableClient,
  forwardedHost,
  forwardedProto,
  isOriginForm,
  isValidMethod,
  pathOf,
} from '../sanitise/forwarded.js';
import { DUPLICATED, readHeaders, singleValue, trimOws, type InboundHeaders } from '../sanitise/headers.js';
import type { TrustedSet } from '../trust/trusted-set.js';
import { refuse, type Refusal } from './reasons.js';
import type { Rules } from './rules.js';

export type Mode = 'inline' | 'forward-auth';

/** What the I/O shell knows of a request. */
export interface RequestFacts {
  readonly mode: Mode;
  /** The socket's peer address: the only source of truth for who is talking. */
  readonly peer: string;
  readonly tls: boolean;
  readonly method: string;
  /** The request target as received (origin-form). */
  readonly target: string;
  readonly rawHeaders: readonly string[];
  /**
   * The connection asked to switch protocols (Upgrade with `Connection: upgrade`). An
   * Upgrade header without it is only a hop-by-hop header of a plain request, and is
   * stripped as one.
   */
  readonly upgrade?: boolean;
}

export interface DecisionContext {
  readonly rules: Rules;
  readonly trusted: TrustedSet;
  readonly signer: AssertionSigner | undefined;
  readonly nowMs: number;
  readonly newId: () => string;
}

export interface Allowed {
  readonly ok: true;
  readonly trustedBy: readonly string[];
  readonly identity: Identity;
  readonly scopes: readonly string[];
  readonly client: string;
  readonly proto: 'http' | 'https';
  readonly host: string | undefined;
  /** Method and target the assertion binds (for forward-auth, the original request's). */
  readonly method: string;
  readonly target: string;
  readonly assertion: string;
  readonly kid: string;
  /** The protocol a WebSocket upgrade switches to; undefined for a plain request. */
  readonly upgrade: string | undefined;
  readonly inbound: InboundHeaders;
}

interface DecisionMeta {
  readonly peer: string;
  readonly stripped: readonly string[];
  /** The client's X-Request-Id when it sent one well-formed, else a new one. */
  readonly requestId: string;
}
export type AllowedDecision = Allowed & DecisionMeta;
export type Decision = AllowedDecision | (Refusal & DecisionMeta);

export function decide(facts: RequestFacts, ctx: DecisionContext): Decision {
  const source = ctx.trusted.lookup(facts.peer);
  if (!source.trusted) {
    const peer = source.address?.text ?? facts.peer;
    // Say which sources were checked, so "why was I refused" is answered from the log.
    const detail = source.reason === 'not_in_trusted_set' ? `${source.reason}: no match in ${ctx.trusted.describeSources()}` : source.reason;
    return { ...refuse('source', 'untrusted_source', detail), peer, stripped: [], requestId: ctx.newId() };
  }
  const peer = source.address.text;
  const inbound = readHeaders(facts.rawHeaders, ctx.rules.owned, ctx.rules.reads);
  const clientId = singleValue(inbound.read, 'x-request-id');
  const requestId = typeof clientId === 'string' && isRequestId(clientId) ? clientId : ctx.newId();
  const { config, policy } = ctx.rules;

  if (inbound.count > config.listen.maxHeaderCount) return refused(refuse('request', 'too_many_headers'), peer, inbound, requestId);
  if (singleValue(inbound.read, 'host') === DUPLICATED) return refused(refuse('request', 'bad_request', 'duplicate Host'), peer, inbound, requestId);

  const target = requestTarget(facts, inbound);
  if (!target.ok) return refused(target, peer, inbound, requestId);
  // Only WebSockets are relayed: another protocol switch (h2c) would open a tunnel that
  // carries later requests to the gateway past every check.
  const upgrade = facts.upgrade === true ? inbound.upgrade : undefined;
  if (facts.upgrade === true && (upgrade === undefined || trimOws(upgrade).toLowerCase() !== 'websocket')) {
    return refused(refuse('request', 'bad_request', 'unsupported upgrade'), peer, inbound, requestId);
  }

  const who = readIdentity(inbound.read, config.identity);
  if (!who.ok) return refused(who, peer, inbound, requestId);
  const { identity } = who;

  if (!isAllowed(identity, policy)) return refused(refuse('policy', 'user_not_allowed', identity.user), peer, inbound, requestId);
  // The Origin check guards WebSocket upgrades; a forward-auth sub-request cannot show
  // whether the original was an upgrade (proxies drop Upgrade), so there it always applies.
  if (upgrade !== undefined || facts.mode === 'forward-auth') {
    const origin = singleValue(inbound.read, 'origin');
    const bad = origin === DUPLICATED ? refuse('policy', 'origin_not_allowed', 'duplicate Origin') : checkOrigin(origin, policy);
    if (bad) return refused(bad, peer, inbound, requestId);
  }
  const scopes = scopesFor(identity, policy);

  const client = clientAddress(inbound.read, peer, ctx.trusted);
  const proto = forwardedProto(inbound.read, facts.tls);
  const host = forwardedHost(inbound.read);

  if (!ctx.signer) return refused(refuse('assertion', 'assertion_key_unavailable'), peer, inbound, requestId);
  const iat = Math.floor(ctx.nowMs / 1000);
  const claims: AssertionClaims = {
    iss: config.assertion.issuer,
    aud: config.assertion.audience,
    sub: identity.user,
    // Left out of the JSON when undefined.
    email: identity.email,
    groups: identity.groups,
    iat,
    nbf: iat,
    exp: iat + config.assertion.ttlSeconds,
    jti: ctx.newId(),
    cip: client,
    htm: target.method,
    htu: targetUri(proto, host ?? '', pathOf(target.target)),
  };
  return {
    ok: true,
    peer,
    stripped: inbound.stripped,
    requestId,
    trustedBy: source.sources,
    identity,
    scopes,
    client,
    proto,
    host,
    method: target.method,
    target: target.target,
    assertion: ctx.signer.sign(claims),
    kid: ctx.signer.kid,
    upgrade,
    inbound,
  };
}

function refused(r: Refusal, peer: string, inbound: InboundHeaders, requestId: string): Decision {
  return { ...r, peer, stripped: inbound.stripped, requestId };
}

/** Inline, the request is its own target; forward-auth names the original in X-Forwarded-*. */
function requestTarget(facts: RequestFacts, inbound: InboundHeaders): { ok: true; method: string; target: string } | Refusal {
  if (facts.mode === 'inline') {
    // Only origin-form: for an absolute-form target the gateway is sent the path alone,
    // so an assertion bound to the whole target could never verify there.
    if (!facts.target.startsWith('/')) return refuse('request', 'bad_request', 'request target is not origin-form');
    return { ok: true, method: facts.method, target: facts.target };
  }
  const method = singleValue(inbound.read, 'x-forwarded-method');
  if (typeof method !== 'string' || !isValidMethod(trimOws(method))) {
    return refuse('request', 'forwarded_method_invalid');
  }
  const uri = singleValue(inbound.read, 'x-forwarded-uri');
  if (typeof uri !== 'string' || !isOriginForm(trimOws(uri))) return refuse('request', 'forwarded_uri_invalid');
  return { ok: true, method: trimOws(method).toUpperCase(), target: trimOws(uri) };
}

/** `[A-Za-z0-9._:-]{1,128}`, as a character scan: a client's id is checked on every request. */
function isRequestId(id: string): boolean {
  if (id.length === 0 || id.length > 128) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95;
    if (!ok) return false;
  }
  return true;
}

/** What the gateway is told of an allowed request's identity, in both modes (an allowed decision is one). */
export interface Grant {
  requestId: string;
  /** The user as received (gateway.userHeader). */
  identity: { userRaw: string };
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
 * in forward-auth mode the front proxy sends its own), then the request id, the user, the
 * scopes and the assertion. Forward-auth answers carry the identity part for the front
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
  if (config.gateway.userHeader) out.push(config.gateway.userHeader, grant.identity.userRaw);
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
  gatewayHeaders(rules.config, allowed, allowed, out);
  if (allowed.upgrade !== undefined) out.push('connection', 'upgrade', 'upgrade', allowed.upgrade);
  return out;
}
