// What each kind of object contributes to the trusted set. Pure functions over the
// objects as the informer holds them: list items arrive as the client's model classes,
// watch events as raw JSON, so only fields whose names agree in both are read.
import { parseAddress, parseRange } from '../trust/address.js';

interface Meta {
  metadata?: { deletionTimestamp?: unknown };
}

export interface PodLike extends Meta {
  status?: { phase?: string; podIP?: string; podIPs?: readonly { ip?: string }[] };
}

export interface EndpointSliceLike extends Meta {
  addressType?: string;
  endpoints?: readonly { addresses?: readonly string[]; conditions?: { ready?: boolean; terminating?: boolean } }[];
}

export interface NodeLike extends Meta {
  spec?: { podCIDR?: string; podCIDRs?: readonly string[] };
  status?: { addresses?: readonly { type?: string; address?: string }[] };
}

/**
 * A pod's IPs while it is Running and not terminating. Readiness is not required: a
 * proxy failing its readiness probe still owns its IP and may still deliver requests in
 * flight. A deletionTimestamp removes it at once, since its IP may soon be reused.
 */
export function podAddresses(pod: PodLike): string[] {
  if (pod.metadata?.deletionTimestamp || pod.status?.phase !== 'Running') return [];
  const ips = (pod.status.podIPs ?? []).map((p) => p.ip);
  if (ips.length === 0) ips.push(pod.status.podIP);
  return validOnly(ips, isAddress);
}

/**
 * Addresses of endpoints the EndpointSlice controller marks ready and not terminating.
 * An absent `ready` counts as not ready (the API allows reading it as ready; failing
 * closed costs nothing because the controller always sets it). FQDN slices are skipped:
 * trust is never derived from DNS.
 */
export function endpointSliceAddresses(slice: EndpointSliceLike): string[] {
  if (slice.metadata?.deletionTimestamp || (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6')) return [];
  const out: (string | undefined)[] = [];
  for (const ep of slice.endpoints ?? []) {
    if (ep.conditions?.ready === true && ep.conditions.terminating !== true) out.push(...(ep.addresses ?? []));
  }
  return validOnly(out, isAddress);
}

/** A node's pod CIDRs (`spec.podCIDRs`, or the older single `spec.podCIDR`). */
export function nodePodCIDRs(node: NodeLike): string[] {
  const cidrs = node.spec?.podCIDRs?.length ? [...node.spec.podCIDRs] : [node.spec?.podCIDR];
  return validOnly(cidrs, isRange);
}

/** A node's addresses of the given types; values that are not IP addresses (DNS names) are skipped. */
export function nodeAddresses(node: NodeLike, types: readonly string[]): string[] {
  return validOnly(
    (node.status?.addresses ?? []).filter((a) => a.type !== undefined && types.includes(a.type)).map((a) => a.address),
    isAddress,
  );
}

/** Deduplicated and sorted, so that equal contributions compare equal. */
function validOnly(values: readonly (string | undefined)[], valid: (v: string) => boolean): string[] {
  const out = new Set<string>();
  for (const v of values) if (v && valid(v)) out.add(v);
  return [...out].sort();
}

// Checked with the trusted set's own parser, so that nothing it would reject gets in.
function isAddress(value: string): boolean {
  return parseAddress(value) !== null;
}

function isRange(value: string): boolean {
  try {
    parseRange(value);
    return true;
  } catch {
    return false;
  }
}
