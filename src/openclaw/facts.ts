// What the OpenClaw gateway expects of the proxy in front of it, and what this sidecar
// sends it. `gateway-config` writes a gateway config from these and `doctor` checks one
// against them, so the two cannot disagree.
import type { Config } from '../config/schema.js';
import { gatewayHeaders } from '../decision/gateway-headers.js';
import { gatewayEndpoint } from '../gateway/endpoint.js';
import { addressValue, isLoopback, parseAddress, parseRange } from '../trust/address.js';

/** The header OpenClaw reads declared operator scopes from (comma-separated). */
export const SCOPES_HEADER = 'x-openclaw-scopes';
export const ADMIN_SCOPE = 'operator.admin';
/** OpenClaw's own default for deviceAutoApprove.scopes: everything but admin. */
export const DEFAULT_AUTO_APPROVE_SCOPES = ['operator.read', 'operator.write', 'operator.approvals', 'operator.questions'];
/** OpenClaw's port when gateway.port is unset. */
export const DEFAULT_GATEWAY_PORT = 18789;

/**
 * The addresses the sidecar's connections to the gateway come from: the loopback address
 * of the upstream URL's family (both for `localhost`), or undefined when the upstream is
 * not on loopback (then the gateway cannot be bound to loopback behind it).
 */
export function sidecarSourceAddresses(sidecar: Config): string[] | undefined {
  const { host } = gatewayEndpoint(sidecar.upstream.url);
  if (host === 'localhost') return ['127.0.0.1', '::1'];
  const addr = parseAddress(host);
  if (addr === null || !isLoopback(addr)) return undefined;
  return [addr.family === 4 ? '127.0.0.1' : '::1'];
}

export function upstreamPort(sidecar: Config): number {
  return gatewayEndpoint(sidecar.upstream.url).port;
}

/**
 * Header names the sidecar sets, non-blank, on every request it forwards from a browser
 * (a real client address and a Host), read from the gateway-header contract itself; the
 * scopes header counts when the default scopes (a user whose groups map to nothing) are not
 * empty.
 */
export function headersSidecarSends(sidecar: Config): Set<string> {
  const example = { requestId: 'r', identity: { userRaw: 'u' }, scopes: sidecar.gateway.scopes.default, assertion: 'a' };
  const sent = gatewayHeaders(sidecar, example, { client: '192.0.2.2', proto: 'https', host: 'gateway.invalid' });
  return new Set(sent.filter((_, i) => i % 2 === 0 && sent[i + 1]!.trim() !== ''));
}

/** Whether an OpenClaw trustedProxies entry (an address or CIDR) covers an address. */
export function entryCovers(entry: string, address: string): boolean {
  const target = parseAddress(address);
  if (target === null) return false;
  try {
    const range = parseRange(entry.trim());
    const value = addressValue(target);
    return range.family === target.family && range.start <= value && value <= range.end;
  } catch {
    return false;
  }
}

/** A public origin as OpenClaw compares it (scheme://host[:port]), or undefined when invalid. */
export function originOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.origin : undefined;
  } catch {
    return undefined;
  }
}
