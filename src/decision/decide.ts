// The decision, as a pipeline of pure stages: source → request → route → identity →
// policy → assertion. It reads only its inputs (no sockets, clock or randomness of its own), so
// inline proxying and forward-auth share it and tests can drive it directly.
import type { AssertionClaims } from '../assertion/claims.js';
import { targetUri } from '../assertion/claims.js';
import type { AssertionSigner } from '../assertion/sign.js';
import type { RouteConfig } from '../config/schema.js';
import type { Identity } from '../identity/identity.js';
import { readIdentity } from '../identity/identity.js';
import type { ProviderKeys } from '../identity/token.js';
import { checkPolicy } from '../policy/policy.js';
import { matchRoute } from '../routes/match.js';
import { clientAddress, forwardedProto } from '../request/forwarded.js';
import { readHeaders, type InboundHeaders } from '../request/headers.js';
import { checkRequest, requestIdOf } from '../request/request.js';
import type { PeerCertificate } from '../trust/certificate.js';
import { checkSource } from '../trust/source.js';
import type { TrustedSet } from '../trust/trusted-set.js';
import type { RequestFacts } from '../vocabulary/facts.js';
import { refuse, type Refusal } from '../vocabulary/refusals.js';
import type { Rules } from './rules.js';

export interface DecisionContext {
  readonly rules: Rules;
  readonly trusted: TrustedSet;
  readonly signer: AssertionSigner | undefined;
  /** The identity provider's keys, when identity.token is on and they have been fetched. */
  readonly providerKeys?: ProviderKeys | undefined;
  readonly nowMs: number;
  readonly newId: () => string;
}

export interface Allowed {
  readonly ok: true;
  readonly trustedBy: readonly string[];
  /** The certificate the source stage trusted (TLS or XFCC), kept to check again on reload. */
  readonly certificate: PeerCertificate | undefined;
  readonly identity: Identity;
  readonly scopes: readonly string[];
  readonly client: string;
  readonly proto: 'http' | 'https';
  readonly host: string;
  /** Method and target the assertion binds (for forward-auth, the original request's). */
  readonly method: string;
  readonly target: string;
  readonly assertion: string;
  readonly kid: string;
  /** The protocol a WebSocket upgrade switches to; undefined for a plain request. */
  readonly upgrade: string | undefined;
  /** The machine route the request passed on, without an SSO identity; undefined for a user's request. */
  readonly route: string | undefined;
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
  // source: the socket's peer must be in the trusted set, or present a trusted certificate,
  // or both (trust.require). The detail says what was checked, for "why was I refused".
  const source = checkSource(facts, ctx.trusted, ctx.rules.source);
  // A machine route may take requests from outside the trusted set when it says so
  // (untrustedSources), inline only: in forward-auth mode the peer is the front proxy.
  const open = source.ok || facts.mode !== 'inline' ? undefined : openRoute(facts, ctx.rules.config.routes);
  if (!source.ok && (open === undefined || source.address === null)) {
    return { ...refuse('untrusted_source', source.detail), peer: source.address?.text ?? facts.peer, stripped: [], requestId: ctx.newId() };
  }
  const peer = source.address!.text;
  const { config } = ctx.rules;

  // request: one pass over the header lines drops what a client could forge (sanitise)
  // and keeps what the stages read; then the request's shape.
  const inbound = readHeaders(facts.rawHeaders, ctx.rules.headers);
  const requestId = requestIdOf(inbound, ctx.newId);
  const request = checkRequest(facts, inbound, config.listen.maxHeaderCount);
  if (!request.ok) return refused(request, peer, inbound, requestId);

  // route: the configured route the request is on, by the method and target the gateway
  // will see (routes/match.ts). A deny route refuses; on a machine route no SSO identity is
  // read: the gateway's own credentials pass, and the assertion names the route.
  const on = matchRoute(request.method, request.target, config.routes);
  if (on?.route.mode === 'deny') return refused(refuse('route_denied', `route ${on.route.name}`), peer, inbound, requestId);
  if (on !== undefined && !on.methodAllowed) {
    return refused(refuse('route_method_not_allowed', `route ${on.route.name} takes ${on.route.methods.join(', ')}`), peer, inbound, requestId);
  }
  const machine = on?.route.mode === 'machine' ? on.route : undefined;
  // Let in from outside the trusted set for one machine route: only on that route.
  if (!source.ok && machine !== open) return refused(refuse('untrusted_source', source.detail), peer, inbound, requestId);
  if (machine !== undefined && request.upgrade !== undefined) {
    return refused(refuse('route_method_not_allowed', `route ${machine.name} takes no upgrade`), peer, inbound, requestId);
  }

  // identity and policy, on every other request.
  const grant = machine === undefined ? ssoGrant(facts, request.upgrade !== undefined, inbound, ctx) : machineGrant(machine);
  if (!grant.ok) return refused(grant, peer, inbound, requestId);
  const { identity, scopes } = grant;

  // assertion: the identity and its scopes signed and bound to this request's method, host,
  // target (path and query) and client.
  if (!ctx.signer) return refused(refuse('assertion_key_unavailable'), peer, inbound, requestId);
  const client = clientAddress(inbound.read, peer, ctx.trusted);
  const proto = forwardedProto(inbound.read, facts.tls);
  const { host } = request;
  const iat = Math.floor(ctx.nowMs / 1000);
  const claims: AssertionClaims = {
    iss: config.assertion.issuer,
    aud: config.assertion.audience,
    sub: identity.user,
    // Left out of the JSON when undefined.
    email: identity.email,
    groups: identity.groups,
    // Only with the header it binds (left out of the JSON when undefined).
    scope: config.gateway.scopesHeader ? scopes.join(' ') : undefined,
    route: machine?.name,
    iat,
    nbf: iat,
    exp: iat + config.assertion.ttlSeconds,
    jti: ctx.newId(),
    cip: client,
    htm: request.method,
    htu: targetUri(proto, host, request.target),
  };
  return {
    ok: true,
    peer,
    stripped: inbound.stripped,
    requestId,
    trustedBy: source.ok ? source.trustedBy : [],
    certificate: source.ok ? source.certificate : undefined,
    identity,
    scopes,
    route: machine?.name,
    client,
    proto,
    host,
    method: request.method,
    target: request.target,
    assertion: ctx.signer.sign(claims),
    kid: ctx.signer.kid,
    upgrade: request.upgrade,
    inbound,
  };
}

type Grant = { readonly ok: true; readonly identity: Identity; readonly scopes: readonly string[] } | Refusal;

/**
 * identity: the trusted proxy's identity headers, once each, clean and bounded; with
 * identity.token, the provider's own signed token too. policy: allowed user, group or
 * domain; the Origin where it applies; the scopes.
 */
function ssoGrant(facts: RequestFacts, upgrade: boolean, inbound: InboundHeaders, ctx: DecisionContext): Grant {
  const { config } = ctx.rules;
  const token = config.identity.token.mode === 'off' ? undefined : { keys: ctx.providerKeys, rules: ctx.rules.token, nowSeconds: Math.floor(ctx.nowMs / 1000) };
  const who = readIdentity(inbound.read, config.identity, token);
  if (!who.ok) return who;
  const policy = checkPolicy(who.identity, upgrade || facts.mode === 'forward-auth', inbound.read, ctx.rules.policy);
  if (!policy.ok) return policy;
  return { ok: true, identity: who.identity, scopes: policy.scopes };
}

/** A machine route's request: the route is its principal, with the route's scopes and no user, email or groups. */
function machineGrant(route: RouteConfig): Grant {
  const user = `route:${route.name}`;
  return { ok: true, identity: { user, userRaw: user, email: undefined, groups: [] }, scopes: route.scopes };
}

/** The machine route an inline request from outside the trusted set may take: one that says so, for its method. */
function openRoute(facts: RequestFacts, routes: readonly RouteConfig[]): RouteConfig | undefined {
  const on = matchRoute(facts.method, facts.target, routes);
  return on?.route.mode === 'machine' && on.route.untrustedSources && on.methodAllowed ? on.route : undefined;
}

function refused(r: Refusal, peer: string, inbound: InboundHeaders, requestId: string): Decision {
  return { ...r, peer, stripped: inbound.stripped, requestId };
}
