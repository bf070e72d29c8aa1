// The forwarded facts the sidecar re-issues: client address, scheme and host. They are
// rebuilt from the trusted proxy's values only when those are well-formed, else from the
// connection itself.
import { isLoopback, parseAddress } from '../trust/address.js';
import type { TrustedSet } from '../trust/trusted-set.js';
import { singleValue, trimOws } from './headers.js';

/**
 * The client address: walk the trusted proxy's X-Forwarded-For from the right, skipping
 * trusted hops; the first untrusted entry is the client. A malformed, loopback or
 * unspecified entry ends the walk (it is not skippable), and then, as when every entry
 * was trusted, the proxy's own address stands for the client.
 */
export function clientAddress(read: Map<string, string[]>, peer: string, trusted: TrustedSet): string {
  const lines = read.get('x-forwarded-for');
  if (lines !== undefined) {
    const entries = lines.join(',').split(',');
    for (let i = entries.length - 1; i >= 0; i--) {
      const address = parseAddress(trimOws(entries[i]!));
      if (address === null) break;
      const verdict = trusted.lookupAddress(address);
      if (verdict.trusted) continue;
      if (verdict.reason !== 'not_in_trusted_set') break;
      return address.text;
    }
  }
  return parseAddress(peer)?.text ?? peer;
}

/** Gateways such as OpenClaw refuse a loopback client address, so it is never sent. */
export function forwardableClient(address: string): boolean {
  const parsed = parseAddress(address);
  return parsed !== null && !isLoopback(parsed);
}

export function forwardedProto(read: Map<string, string[]>, tls: boolean): 'http' | 'https' {
  const value = singleValue(read, 'x-forwarded-proto');
  if (typeof value === 'string') {
    const v = trimOws(value).toLowerCase();
    if (v === 'http' || v === 'https') return v;
  }
  return tls ? 'https' : 'http';
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

export function isValidHost(value: string): boolean {
  return value.length <= 261 && HOST.test(value);
}

export function forwardedHost(read: Map<string, string[]>): string | undefined {
  const forwarded = singleValue(read, 'x-forwarded-host');
  if (typeof forwarded === 'string' && isValidHost(trimOws(forwarded))) return trimOws(forwarded);
  const host = singleValue(read, 'host');
  return typeof host === 'string' && isValidHost(trimOws(host)) ? trimOws(host) : undefined;
}
