// One pass over the raw header lines: what may be forwarded, what the sidecar reads
// (identity and forwarded facts, by exact lower-case name), and what was stripped.
import { HOP_BY_HOP, type ProtectedNames } from './protected.js';

export interface InboundHeaders {
  /**
   * Headers a client may pass through, in arrival order (never protected, never
   * hop-by-hop): lower-case name, value, name, value, … (flat, as Node's rawHeaders).
   */
  readonly forward: string[];
  /**
   * Non-hop-by-hop, non-nominated headers by exact lower-case name, duplicates kept apart:
   * those named in `reads` when given (what the decision reads), else every one.
   */
  readonly read: Map<string, string[]>;
  /** Protected names (the rule that matched) or `hop-by-hop`, once per removed line. */
  readonly stripped: string[];
  readonly upgrade: string | undefined;
  readonly count: number;
}

export function readHeaders(raw: readonly string[], names: HeaderNames): InboundHeaders {
  const nominated = connectionNominations(raw, names);
  const forward: string[] = [];
  const read = new Map<string, string[]>();
  const stripped: string[] = [];
  let upgrade: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = names.classify(raw[i]!);
    const value = raw[i + 1]!;
    const { lower } = name;
    if (name.hopByHop) {
      if (lower === 'upgrade') upgrade = value;
      stripped.push('hop-by-hop');
      continue;
    }
    // A header named in Connection is removed before anything reads it, exactly as a
    // hop-by-hop-honouring proxy would, so what is checked is what is forwarded.
    if (nominated !== undefined && nominated.has(lower)) {
      stripped.push('connection-nominated');
      continue;
    }
    if (name.read) {
      const list = read.get(lower);
      if (list) list.push(value);
      else read.set(lower, [value]);
    }
    if (name.owned !== undefined) {
      stripped.push(name.owned);
      continue;
    }
    forward.push(lower, value);
  }
  return { forward, read, stripped, upgrade, count: raw.length / 2 };
}

function connectionNominations(raw: readonly string[], names: HeaderNames): Set<string> | undefined {
  let nominated: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || names.classify(raw[i]!).lower !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const t = trimOws(token).toLowerCase();
      if (t && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') (nominated ??= new Set()).add(t);
    }
  }
  return nominated;
}

/** What the header pass does with the lines of one header name, under one set of rules. */
export interface NameClass {
  /** The name lower-cased, as it is read and forwarded. */
  readonly lower: string;
  readonly hopByHop: boolean;
  /** The protected name that covers it (its lines are stripped), if any. */
  readonly owned: string | undefined;
  /** The decision reads it. */
  readonly read: boolean;
}

/** Longer names are classified each time: a client inventing them cannot grow the memo. */
const MEMO_NAME_LENGTH = 64;
/** Distinct names remembered; the memo starts over when full. */
const MEMO_NAMES = 256;

/**
 * The header names of one set of rules (the protected names and those the decision reads),
 * each classified once. Lower-casing every name and matching it against every protected
 * prefix, on every request, was most of the header pass's cost; the same few names in the
 * same spellings arrive on every request. Keyed by the name as received. The memo is
 * bounded in count and name length, so names a client invents only make it start over;
 * it holds nothing a request could not recompute, so it never changes an answer.
 */
export class HeaderNames {
  private readonly memo = new Map<string, NameClass>();

  /** `reads`: the names whose values the pass keeps; undefined keeps every name's. */
  constructor(
    readonly owned: ProtectedNames,
    readonly reads?: ReadonlySet<string>,
  ) {}

  classify(name: string): NameClass {
    const known = this.memo.get(name);
    if (known !== undefined) return known;
    const lower = name.toLowerCase();
    const hopByHop = HOP_BY_HOP.has(lower);
    const named: NameClass = {
      lower,
      hopByHop,
      owned: hopByHop ? undefined : this.owned.match(lower),
      read: !hopByHop && (this.reads === undefined || this.reads.has(lower)),
    };
    if (name.length <= MEMO_NAME_LENGTH) {
      if (this.memo.size >= MEMO_NAMES) this.memo.clear();
      this.memo.set(name, named);
    }
    return named;
  }

  /** Names remembered now (for the test of its bound). */
  get remembered(): number {
    return this.memo.size;
  }
}

/**
 * A header value without the optional white space around it (RFC 9110, 5.6.3: SP and HTAB
 * only). String.prototype.trim() is wrong here: values arrive decoded as latin1, and it
 * also eats 0xA0, the last byte of many UTF-8 characters (`à`, `Š`, `张`).
 */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

export const DUPLICATED = Symbol('duplicated');

/** The one value of a header; undefined when absent, DUPLICATED when it occurs more than once. */
export function singleValue(read: Map<string, string[]>, name: string): string | undefined | typeof DUPLICATED {
  const values = read.get(name);
  if (values === undefined) return undefined;
  return values.length === 1 ? values[0] : DUPLICATED;
}
