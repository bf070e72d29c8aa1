// An immutable set of trusted proxy ranges. Built once per change (static config or a
// discovery event) and swapped atomically; lookups are a binary search over disjoint
// ranges, each labelled with the sources that trust it, so a refusal log can say why.
import { type Address, isLoopback, isUnspecified, parseAddress, parseRange } from './address.js';

export interface TrustEntry {
  readonly cidr: string;
  readonly source: string;
}

export type TrustLookup =
  | { readonly trusted: true; readonly address: Address; readonly sources: readonly string[] }
  | {
      readonly trusted: false;
      readonly address: Address | null;
      readonly reason: 'malformed' | 'loopback_not_allowed' | 'unspecified' | 'not_in_trusted_set';
    };

interface Segments<T extends number | bigint> {
  starts: ArrayLike<T>;
  ends: ArrayLike<T>;
  labels: (readonly string[])[];
}

export class TrustedSet {
  private readonly v4: Segments<number>;
  private readonly v6: Segments<bigint>;
  /** Number of entries it was built from, per source (for metrics); declared sources without entries count 0. */
  readonly sizeBySource: ReadonlyMap<string, number>;

  constructor(
    entries: readonly TrustEntry[],
    readonly allowLoopback: boolean,
    declared: readonly string[] = [],
  ) {
    const v4: { start: bigint; end: bigint; source: string }[] = [];
    const v6: typeof v4 = [];
    const sizes = new Map<string, number>(declared.map((name) => [name, 0]));
    for (const e of entries) {
      const r = parseRange(e.cidr);
      (r.family === 4 ? v4 : v6).push({ start: r.start, end: r.end, source: e.source });
      sizes.set(e.source, (sizes.get(e.source) ?? 0) + 1);
    }
    this.sizeBySource = sizes;
    const seg4 = buildSegments(v4);
    // Typed arrays: the IPv4 search is on the hot path of every request.
    this.v4 = { starts: Float64Array.from(seg4.starts, Number), ends: Float64Array.from(seg4.ends, Number), labels: seg4.labels };
    this.v6 = buildSegments(v6);
  }

  get size(): number {
    let n = 0;
    for (const v of this.sizeBySource.values()) n += v;
    return n;
  }

  /** The sources a refused peer was checked against, for the refusal log: `static (2 entries), …`. */
  describeSources(): string {
    if (this.sizeBySource.size === 0) return 'no trust sources configured';
    return [...this.sizeBySource].map(([name, n]) => `${name} (${n} ${n === 1 ? 'entry' : 'entries'})`).join(', ');
  }

  lookup(text: string): TrustLookup {
    const address = parseAddress(text);
    return address ? this.lookupAddress(address) : { trusted: false, address: null, reason: 'malformed' };
  }

  lookupAddress(address: Address): TrustLookup {
    if (isUnspecified(address)) return { trusted: false, address, reason: 'unspecified' };
    if (isLoopback(address)) {
      return this.allowLoopback
        ? { trusted: true, address, sources: LOOPBACK }
        : { trusted: false, address, reason: 'loopback_not_allowed' };
    }
    const labels = address.family === 4 ? find(this.v4, address.value) : find(this.v6, address.value);
    return labels ? { trusted: true, address, sources: labels } : { trusted: false, address, reason: 'not_in_trusted_set' };
  }
}

const LOOPBACK = Object.freeze(['loopback']);

function find<T extends number | bigint>(s: Segments<T>, value: T): readonly string[] | undefined {
  let lo = 0;
  let hi = s.starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (s.starts[mid]! <= value) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi >= 0 && value <= s.ends[hi]! ? s.labels[hi] : undefined;
}

/** Splits overlapping labelled ranges into disjoint, sorted segments (a sweep over range edges). */
function buildSegments(ranges: { start: bigint; end: bigint; source: string }[]): { starts: bigint[]; ends: bigint[]; labels: (readonly string[])[] } {
  const events: { at: bigint; source: string; delta: 1 | -1 }[] = [];
  for (const r of ranges) {
    events.push({ at: r.start, source: r.source, delta: 1 }, { at: r.end + 1n, source: r.source, delta: -1 });
  }
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const out = { starts: [] as bigint[], ends: [] as bigint[], labels: [] as (readonly string[])[] };
  const active = new Map<string, number>();
  for (let i = 0; i < events.length; ) {
    const at = events[i]!.at;
    for (; i < events.length && events[i]!.at === at; i++) {
      const e = events[i]!;
      const n = (active.get(e.source) ?? 0) + e.delta;
      if (n === 0) active.delete(e.source);
      else active.set(e.source, n);
    }
    if (active.size === 0 || i === events.length) continue;
    const label = Object.freeze([...active.keys()].sort());
    const end = events[i]!.at - 1n;
    const last = out.starts.length - 1;
    if (last >= 0 && out.ends[last]! + 1n === at && out.labels[last]!.join() === label.join()) {
      out.ends[last] = end;
    } else {
      out.starts.push(at);
      out.ends.push(end);
      out.labels.push(label);
    }
  }
  return out;
}
