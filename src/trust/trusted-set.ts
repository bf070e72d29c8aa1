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

/** Disjoint sorted IPv4 ranges: inclusive bounds as numbers. */
interface Segments4 {
  starts: Float64Array;
  ends: Float64Array;
  labels: (readonly string[])[];
}

/** Disjoint sorted IPv6 ranges: segment i's bounds are the 32-bit words [4i, 4i + 4), most significant first. */
interface Segments6 {
  starts: Uint32Array;
  ends: Uint32Array;
  labels: (readonly string[])[];
}

export class TrustedSet {
  private readonly v4: Segments4;
  private readonly v6: Segments6;
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
    // Typed arrays: the search is on the hot path of every request.
    const seg4 = buildSegments(v4);
    this.v4 = { starts: Float64Array.from(seg4.starts, Number), ends: Float64Array.from(seg4.ends, Number), labels: seg4.labels };
    const seg6 = buildSegments(v6);
    this.v6 = { starts: toWords(seg6.starts), ends: toWords(seg6.ends), labels: seg6.labels };
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
    // In a pod every container, and a mesh's proxy, is a loopback peer: a loopback address
    // is trusted only when allowed AND listed, like any other.
    if (isLoopback(address) && !this.allowLoopback) return { trusted: false, address, reason: 'loopback_not_allowed' };
    const labels = address.family === 4 ? find4(this.v4, address.value) : find6(this.v6, address.words);
    return labels ? { trusted: true, address, sources: labels } : { trusted: false, address, reason: 'not_in_trusted_set' };
  }
}

function find4(s: Segments4, value: number): readonly string[] | undefined {
  let lo = 0;
  let hi = s.starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (s.starts[mid]! <= value) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi >= 0 && value <= s.ends[hi]! ? s.labels[hi] : undefined;
}

function find6(s: Segments6, value: readonly [number, number, number, number]): readonly string[] | undefined {
  let lo = 0;
  let hi = s.labels.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (compareWords(s.starts, mid * 4, value) <= 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi >= 0 && compareWords(s.ends, hi * 4, value) >= 0 ? s.labels[hi] : undefined;
}

/** The 128-bit value at words[at..at+4) compared with `value`: negative, zero or positive. */
function compareWords(words: Uint32Array, at: number, value: readonly [number, number, number, number]): number {
  return words[at]! - value[0] || words[at + 1]! - value[1] || words[at + 2]! - value[2] || words[at + 3]! - value[3];
}

function toWords(values: readonly bigint[]): Uint32Array {
  const words = new Uint32Array(values.length * 4);
  values.forEach((v, i) => {
    for (let k = 0; k < 4; k++) words[i * 4 + k] = Number((v >> BigInt(96 - 32 * k)) & 0xffffffffn);
  });
  return words;
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
  for (let i = 0; i < events.length;) {
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
