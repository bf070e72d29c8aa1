// One compiled, immutable view of everything a request reads: the config, its compiled
// rules (policy, owned header names), the trusted set and the signer. The runtime builds
// a new one whenever an input changes and swaps it in whole (server/apply-snapshot.ts says what follows);
// a request takes the snapshot in force when it arrives and uses that one from its
// decision to its upstream write, so a reload can never show it half of each.
import type { KeyRing } from '../assertion/keys.js';
import { AssertionSigner } from '../assertion/sign.js';
import type { Config } from '../config/schema.js';
import type { DecisionContext } from '../decision/decide.js';
import { compileRules, type Rules } from '../decision/rules.js';
import { gatewayEndpoint, type GatewayEndpoint } from '../gateway/endpoint.js';
import type { ProviderKeys } from '../identity/token.js';
import type { TrustedSet } from '../trust/trusted-set.js';

export interface Snapshot {
  readonly config: Config;
  readonly rules: Rules;
  /** upstream.url, read once: where this snapshot's requests go. */
  readonly gateway: GatewayEndpoint;
  readonly trusted: TrustedSet;
  readonly keys: KeyRing;
  /** Undefined while no usable key is present: every request is refused then. */
  readonly signer: AssertionSigner | undefined;
  /** The identity provider's keys (identity.token); undefined until fetched, or once stale. */
  readonly providerKeys: ProviderKeys | undefined;
}

/** The inputs a snapshot is compiled from; each is itself immutable. */
export interface SnapshotInputs {
  readonly config: Config;
  readonly trusted: TrustedSet;
  readonly keys: KeyRing;
  readonly providerKeys: ProviderKeys | undefined;
}

/**
 * Compiles a snapshot. Parts whose input is the previous snapshot's are reused, so a
 * discovery event (a new trusted set) does not recompile the policy or the signer.
 */
export function compileSnapshot(inputs: SnapshotInputs, previous?: Snapshot): Snapshot {
  const { config, trusted, keys, providerKeys } = inputs;
  const sameConfig = previous?.config === config;
  const rules = sameConfig ? previous.rules : compileRules(config);
  const gateway = sameConfig ? previous.gateway : gatewayEndpoint(config.upstream.url);
  const signer = previous?.keys === keys ? previous.signer : signerOf(keys);
  return Object.freeze({ config, rules, gateway, trusted, keys, signer, providerKeys });
}

/** What decide() reads: the snapshot's compiled parts, a clock reading and an id source. */
export function decisionContext(snapshot: Snapshot, nowMs: number, newId: () => string): DecisionContext {
  return { rules: snapshot.rules, trusted: snapshot.trusted, signer: snapshot.signer, providerKeys: snapshot.providerKeys, nowMs, newId };
}

function signerOf(keys: KeyRing): AssertionSigner | undefined {
  const kid = keys.activeKeyId;
  return kid === undefined ? undefined : new AssertionSigner(kid, keys.keys.get(kid)!);
}
