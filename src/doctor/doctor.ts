// Checks an OpenClaw gateway config against the sidecar config in front of it and names
// every mismatch on the path from the SSO login to a working Control UI: each rule of
// rules.ts says what is wrong, what the user will see because of it, and the fix. Paths
// say which file: `openclaw:` for the gateway's config, `sidecar:` for the sidecar's.
import type { Config } from '../config/schema.js';
import { RULES, type Finding, type PodNetwork, type Subject } from './rules.js';

export type { Finding, PodNetwork } from './rules.js';

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A /24's worth: wider ranges than this are pod or node networks in every common cluster layout. */
export const DEFAULT_MAX_TRUSTED_ADDRESSES = 256;

export interface DoctorOptions {
  publicOrigin?: string;
  maxTrustedAddresses?: number;
  /** The cluster's pod networks (nodes' pod CIDRs), with `doctor --cluster`. */
  podNetworks?: readonly PodNetwork[];
}

export function diagnose(sidecar: Config, gateway: unknown, options: DoctorOptions = {}): Finding[] {
  if (!isObject(gateway)) {
    return [
      {
        severity: 'error',
        code: 'gateway_config_invalid',
        path: 'openclaw:',
        problem: 'the gateway config is not a JSON5 object',
        userSees: 'the gateway does not start',
        fix: 'write the gateway config as a JSON5 object',
      },
    ];
  }
  const subject = subjectOf(sidecar, gateway, options);
  return RULES.flatMap((rule) => rule.check(subject).map((p) => ({ severity: rule.severity, code: rule.code, ...p })));
}

function subjectOf(sidecar: Config, gateway: Obj, options: DoctorOptions): Subject {
  const at = (path: string): unknown => {
    let value: unknown = gateway;
    for (const key of path.split('.')) {
      if (!isObject(value)) return undefined;
      value = value[key];
    }
    return value;
  };
  const strings = (path: string): string[] | undefined => {
    const value = at(path);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
  };
  return {
    sidecar,
    at,
    strings,
    publicOrigin: options.publicOrigin,
    maxTrustedAddresses: options.maxTrustedAddresses ?? DEFAULT_MAX_TRUSTED_ADDRESSES,
    podNetworks: options.podNetworks ?? [],
  };
}
