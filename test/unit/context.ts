// Builds the decision's inputs without sockets: a parsed config, its compiled rules, a
// trusted set, and a signer on a fixed key, so unit tests drive the pure pipeline directly.
import { AssertionSigner } from '../../src/assertion/sign.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import type { DecisionContext } from '../../src/decision/decide.js';
import type { RequestFacts } from '../../src/vocabulary/facts.js';
import { compileRules } from '../../src/decision/rules.js';
import { TrustedSet } from '../../src/trust/trusted-set.js';

export const KEY = Buffer.alloc(32, 7);
export const KID = 'k1';
export const KEYS = new Map([[KID, KEY]]);
/** A fixed clock: 2030-01-01T00:00:00Z. */
export const NOW_MS = Date.UTC(2030, 0, 1);

export function config(input: ConfigInput = {}): Config {
  return configSchema.parse(input);
}

let counter = 0;
/** Ids as unique as the real ones but recognisable in failures. */
export function sequentialId(): string {
  return `id-${(counter++).toString(36).padStart(22, '0')}`;
}

export function context(
  input: ConfigInput = {},
  options: { cidrs?: string[]; allowLoopback?: boolean; signer?: AssertionSigner | null } = {},
): DecisionContext {
  const cfg = config(input);
  // Allowing loopback means listing it too (loopback by membership).
  const cidrs = options.cidrs ?? [...cfg.trust.cidrs, ...(options.allowLoopback ? ['127.0.0.0/8', '::1'] : [])];
  return {
    rules: compileRules(cfg),
    trusted: new TrustedSet(
      cidrs.map((cidr) => ({ cidr, source: 'static' })),
      options.allowLoopback ?? cfg.trust.allowLoopback,
    ),
    signer: options.signer === null ? undefined : (options.signer ?? new AssertionSigner(KID, KEY)),
    nowMs: NOW_MS,
    newId: sequentialId,
  };
}

/** Request facts from a flat header list: ['Name', 'value', 'Name', 'value', ...]. */
export function facts(rawHeaders: string[], over: Partial<RequestFacts> = {}): RequestFacts {
  return { mode: 'inline', peer: '10.0.0.5', tls: false, method: 'GET', target: '/', rawHeaders, ...over };
}
