// Where trusted ranges come from: the config's static CIDRs and live discovery sources.
// Each discovery source replaces its own entries here and the change is announced; the
// runtime then compiles a new snapshot whose trusted set (`compile`) joins the static
// CIDRs with every source's, and swaps it in whole, so a request sees either the old set
// or the new one, never a mix.
import { TrustedSet, type TrustEntry } from './trusted-set.js';

export const STATIC_SOURCE = 'static';

export interface TrustSourceState {
  /** False until the source has produced its first complete set (readiness waits for it). */
  readonly synced: boolean;
  readonly cidrs: readonly string[];
}

export class TrustRegistry {
  private readonly sources = new Map<string, TrustSourceState>();
  private changed: () => void = () => {};

  setSource(name: string, state: TrustSourceState): void {
    this.sources.set(name, state);
    this.changed();
  }

  removeSource(name: string): void {
    if (this.sources.delete(name)) this.changed();
  }

  /** Declares a source that has not synced yet, so readiness waits for it. */
  expectSource(name: string): void {
    if (!this.sources.has(name)) this.setSource(name, { synced: false, cidrs: [] });
  }

  unsyncedSources(): string[] {
    return [...this.sources].filter(([, s]) => !s.synced).map(([n]) => n);
  }

  /** The one listener: the runtime, which compiles and swaps in a new snapshot. */
  onChange(listener: () => void): void {
    this.changed = listener;
  }

  /** The trusted set of the static CIDRs and every source's entries, each labelled by its source. */
  compile(trust: { readonly cidrs: readonly string[]; readonly allowLoopback: boolean }): TrustedSet {
    const entries: TrustEntry[] = trust.cidrs.map((cidr) => ({ cidr, source: STATIC_SOURCE }));
    for (const [source, state] of this.sources) {
      for (const cidr of state.cidrs) entries.push({ cidr, source });
    }
    return new TrustedSet(entries, trust.allowLoopback, [STATIC_SOURCE, ...this.sources.keys()]);
  }
}
