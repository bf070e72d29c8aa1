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

export function readHeaders(raw: readonly string[], owned: ProtectedNames, reads?: ReadonlySet<string>): InboundHeaders {
  const nominated = connectionNominations(raw);
  const forward: string[] = [];
  const read = new Map<string, string[]>();
  const stripped: string[] = [];
  let upgrade: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
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
    if (reads === undefined || reads.has(lower)) {
      const list = read.get(lower);
      if (list) list.push(value);
      else read.set(lower, [value]);
    }
    const rule = owned.match(lower);
    if (rule !== undefined) {
      stripped.push(rule);
      continue;
    }
    forward.push(lower, value);
  }
  return { forward, read, stripped, upgrade, count: raw.length / 2 };
}

function connectionNominations(raw: readonly string[]): Set<string> | undefined {
  let names: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const t = trimOws(token).toLowerCase();
      if (t && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') (names ??= new Set()).add(t);
    }
  }
  return names;
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
