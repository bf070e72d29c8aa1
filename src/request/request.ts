// The request stage: after the source is trusted, the request's own shape. The header pass
// (headers.ts) has already dropped every line a client could forge and kept the values the
// decision reads; here the rest is checked: header count, one Host, an origin-form target
// (or, for forward-auth, a well-formed original method and URI), one well-formed host, and
// only WebSocket as a protocol switch.
import type { RequestFacts } from '../vocabulary/facts.js';
import { refuse, type Refusal } from '../vocabulary/refusals.js';
import { forwardedHost } from './forwarded.js';
import { DUPLICATED, singleValue, trimOws, type InboundHeaders } from './headers.js';

export interface RequestShape {
  readonly ok: true;
  /** Method and target the assertion binds (for forward-auth, the original request's). */
  readonly method: string;
  readonly target: string;
  /** The host the request is for (forwarded.ts): the assertion binds it, the gateway rebuilds htu from it. */
  readonly host: string;
  /** The protocol a WebSocket upgrade switches to; undefined for a plain request. */
  readonly upgrade: string | undefined;
}

export function checkRequest(facts: RequestFacts, inbound: InboundHeaders, maxHeaderCount: number): RequestShape | Refusal {
  if (inbound.count > maxHeaderCount) return refuse('too_many_headers');
  if (singleValue(inbound.read, 'host') === DUPLICATED) return refuse('bad_request', 'duplicate Host');
  const target = requestTarget(facts, inbound);
  if (!target.ok) return target;
  // The gateway, and the guard in it, rebuild htu from the host the sidecar forwards: without
  // one well-formed host (HTTP/1.0 without Host, a name with a trailing dot) there is none
  // both could agree on, and an assertion bound to no host would verify for none.
  const host = forwardedHost(inbound.read);
  if (host === undefined) return refuse('bad_request', 'no well-formed Host or X-Forwarded-Host');
  // Only WebSockets are relayed: another protocol switch (h2c) would open a tunnel that
  // carries later requests to the gateway past every check.
  const upgrade = facts.upgrade === true ? inbound.upgrade : undefined;
  if (facts.upgrade === true && (upgrade === undefined || trimOws(upgrade).toLowerCase() !== 'websocket')) {
    return refuse('bad_request', 'unsupported upgrade');
  }
  return { ok: true, method: target.method, target: target.target, host, upgrade };
}

/** The client's X-Request-Id when it sent one well-formed, else a new one. */
export function requestIdOf(inbound: InboundHeaders, newId: () => string): string {
  const id = singleValue(inbound.read, 'x-request-id');
  return typeof id === 'string' && isRequestId(id) ? id : newId();
}

/** Inline, the request is its own target; forward-auth names the original in X-Forwarded-*. */
function requestTarget(facts: RequestFacts, inbound: InboundHeaders): { ok: true; method: string; target: string } | Refusal {
  if (facts.mode === 'inline') {
    // Only origin-form: for an absolute-form target the gateway is sent the path alone,
    // so an assertion bound to the whole target could never verify there.
    if (!facts.target.startsWith('/')) return refuse('bad_request', 'request target is not origin-form');
    return { ok: true, method: facts.method, target: facts.target };
  }
  const method = singleValue(inbound.read, 'x-forwarded-method');
  if (typeof method !== 'string' || !isValidMethod(trimOws(method))) return refuse('forwarded_method_invalid');
  const uri = singleValue(inbound.read, 'x-forwarded-uri');
  if (typeof uri !== 'string' || !isOriginForm(trimOws(uri))) return refuse('forwarded_uri_invalid');
  return { ok: true, method: trimOws(method).toUpperCase(), target: trimOws(uri) };
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
export function isValidMethod(value: string): boolean {
  return METHOD.test(value);
}

// RFC 9112 origin-form: an absolute path and optional query; no fragment, no spaces or controls.
const ORIGIN_FORM = /^\/[^\s#\u0000-\u001f\u007f]*$/;
export function isOriginForm(value: string): boolean {
  return value.length <= 8192 && ORIGIN_FORM.test(value);
}

export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
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
