// Where trusted ranges come from: static config and, later, live discovery sources. Each
// source replaces its own entries; every change rebuilds one immutable TrustedSet and
// swaps it in, so a request sees either the old set or the new one, never a mix.
import { TrustedSet, type TrustEntry } from './trusted-set.js';

export const STATIC_SOURCE = 'static';

export interface TrustSourceState {
  /** False until the source has produced its first complete set (readiness waits for it). */
  readonly synced: boolean;
  readonly cidrs: readonly string[];
}

export class TrustRegistry {
  private readonly sources = new Map<string, TrustSourceState>();
  private allowLoopback = false;
  private snapshot = new TrustedSet([], false);
  private readonly listeners = new Set<(set: TrustedSet) => void>();

  /** The set in force now; hold on to it for one decision only. */
  current(): TrustedSet {
    return this.snapshot;
  }

  setAllowLoopback(allow: boolean): void {
    this.allowLoopback = allow;
    this.rebuild();
  }

  setSource(name: string, state: TrustSourceState): void {
    this.sources.set(name, state);
    this.rebuild();
  }

  removeSource(name: string): void {
    if (this.sources.delete(name)) this.rebuild();
  }

  /** Declares a source that has not synced yet, so readiness waits for it. */
  expectSource(name: string): void {
    if (!this.sources.has(name)) this.setSource(name, { synced: false, cidrs: [] });
  }

  unsyncedSources(): string[] {
    return [...this.sources].filter(([, s]) => !s.synced).map(([n]) => n);
  }

  sourceNames(): string[] {
    return [...this.sources.keys()];
  }

  onChange(listener: (set: TrustedSet) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private rebuild(): void {
    const entries: TrustEntry[] = [];
    for (const [source, state] of this.sources) {
      for (const cidr of state.cidrs) entries.push({ cidr, source });
    }
    this.snapshot = new TrustedSet(entries, this.allowLoopback, [...this.sources.keys()]);
    for (const l of this.listeners) l(this.snapshot);
  }
}
