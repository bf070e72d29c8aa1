// Peer and forwarded addresses, normalised so that every spelling of one host is
// classified alike: `::ffff:10.0.0.1` is 10.0.0.1, `::ffff:127.0.0.1` is loopback.

/**
 * IPv6 values are four unsigned 32-bit words, most significant first, not a BigInt: every
 * request's peer is parsed and looked up, and BigInt arithmetic made IPv6 lookups 10x
 * slower than IPv4 ones. `addressValue` gives the BigInt where the cost does not matter.
 */
export type Address =
  | { readonly family: 4; readonly value: number; readonly text: string }
  | {
      readonly family: 6;
      readonly words: readonly [number, number, number, number];
      readonly text: string;
    };

/** Parses a bare IPv4 or IPv6 address (no port, no brackets, no zone); null when malformed. */
export function parseAddress(input: string): Address | null {
  const v4 = dottedQuad(input);
  // Accepted only in canonical form, so the input is its own text.
  if (v4 >= 0) return { family: 4, value: v4, text: input };
  // `::a.b.c.d` (deprecated IPv4-compatible) is read as IPv4-mapped, as ipaddr.js did before.
  const compat = input.startsWith('::') ? dottedQuad(input.slice(2)) : -1;
  if (compat >= 0) return ipv4(compat);
  const g = groups;
  const spelling = ipv6Groups(input, g);
  if (spelling === 'malformed') return null;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return ipv4(g[6]! * 65536 + g[7]!);
  }
  const words = [g[0]! * 65536 + g[1]!, g[2]! * 65536 + g[3]!, g[4]! * 65536 + g[5]!, g[6]! * 65536 + g[7]!] as const;
  // Node reports peers in RFC 5952 form already: then the input is its own text.
  return { family: 6, words, text: spelling === 'canonical' ? input : ipv6Text(g) };
}

/** The address as one integer (IPv4 32 bits, IPv6 128 bits), for range arithmetic off the hot path. */
export function addressValue(a: Address): bigint {
  if (a.family === 4) return BigInt(a.value);
  const [w0, w1, w2, w3] = a.words;
  return (BigInt(w0) << 96n) | (BigInt(w1) << 64n) | (BigInt(w2) << 32n) | BigInt(w3);
}

// Scratch space for ipv6Groups: parsing is synchronous, so one buffer serves every call
// and a lookup allocates only the Address it returns.
const groups = new Uint16Array(8);

/**
 * Fills `out` with the eight 16-bit groups of an IPv6 address (hex groups, at most one
 * `::`, optionally a dotted-quad tail) and says whether it was spelled as RFC 5952 would.
 * Hand-written for the same reason as dottedQuad: a general parser made IPv6 lookups 30x
 * slower than IPv4 ones. No zones, brackets or ports.
 */
function ipv6Groups(s: string, out: Uint16Array): 'malformed' | 'canonical' | 'other' {
  const n = s.length;
  if (n < 2 || n > 45) return 'malformed';
  // Lower-case hex without leading zeros; the `::` is checked at the end.
  let plain = true;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return 'malformed';
    gap = 0;
    i = 2;
  }
  while (i < n) {
    if (count === 8) return 'malformed';
    let j = i;
    let v = 0;
    for (; j < n && j - i < 5; j++) {
      const c = s.charCodeAt(j);
      const h = c < 128 ? HEX[c]! : -1;
      if (h < 0) break;
      if (h > 9 && c < 97) plain = false;
      v = (v << 4) | h;
    }
    if (j < n && s.charCodeAt(j) === 46) {
      const q = count <= 6 ? dottedQuad(s.slice(i)) : -1;
      if (q < 0) return 'malformed';
      out[count++] = q >>> 16;
      out[count++] = q & 0xffff;
      plain = false;
      break;
    }
    if (j === i || j - i > 4) return 'malformed';
    if (j - i > 1 && s.charCodeAt(i) === 48) plain = false;
    out[count++] = v;
    if (j === n) break;
    if (s.charCodeAt(j) !== 58) return 'malformed';
    if (s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return 'malformed';
      gap = count;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === n) return 'malformed';
    }
  }
  if (gap < 0) {
    if (count !== 8) return 'malformed';
    return plain && longestZeroRun(out) < 0 ? 'canonical' : 'other';
  }
  if (count > 7) return 'malformed';
  // Move the groups after `::` to the end and zero what the `::` stands for.
  const shift = 8 - count;
  for (let k = 7; k >= gap + shift; k--) out[k] = out[k - shift]!;
  for (let k = gap; k < gap + shift; k++) out[k] = 0;
  // Canonical when the `::` stands for exactly the run RFC 5952 compresses.
  return plain && longestZeroRun(out) === gap && zerosFrom(out, gap) === shift ? 'canonical' : 'other';
}

/** Hex digit values by character code below 128 (-1: not a digit): a table, as this runs per character. */
const HEX = new Int8Array(128).fill(-1);
for (let c = 48; c <= 57; c++) HEX[c] = c - 48;
for (let c = 97; c <= 102; c++) HEX[c] = c - 87;
for (let c = 65; c <= 70; c++) HEX[c] = c - 55;

/** Where the longest run of two or more zero groups starts (the first on a tie), or -1. */
function longestZeroRun(g: Uint16Array): number {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    const len = zerosFrom(g, i);
    if (len > bestLen) {
      best = i;
      bestLen = len;
    }
    i += len || 1;
  }
  return best;
}

function zerosFrom(g: Uint16Array, start: number): number {
  let j = start;
  while (j < 8 && g[j] === 0) j++;
  return j - start;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups (the first on a tie) as `::`. */
function ipv6Text(g: Uint16Array): string {
  const best = longestZeroRun(g);
  const bestLen = best < 0 ? 0 : zerosFrom(g, best);
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      text += '::';
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== best + bestLen) text += ':';
    text += g[i]!.toString(16);
  }
  return text;
}

/**
 * The value of a dotted-quad IPv4 address (four decimal octets up to 255), or -1. Leading
 * zeros are read as octal by some parsers: refuse them rather than guess. A character
 * scan, because every request's peer goes through here (a regex costs 3x).
 */
function dottedQuad(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else {
      return -1;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

function ipv4(value: number): Address {
  return { family: 4, value, text: `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}` };
}

export function isLoopback(a: Address): boolean {
  if (a.family === 4) return a.value >>> 24 === 127;
  const w = a.words;
  return w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 1;
}

export function isUnspecified(a: Address): boolean {
  if (a.family === 4) return a.value >>> 24 === 0;
  const w = a.words;
  return w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0;
}

/** An address or CIDR as an inclusive range. Throws on malformed input (config is validated first). */
export function parseRange(cidr: string): { family: 4 | 6; start: bigint; end: bigint } {
  const [addrText, bitsText, extra] = cidr.split('/');
  const addr = parseAddress(addrText!.trim());
  if (!addr || extra !== undefined) throw new Error(`not an address: ${cidr}`);
  const width = addr.family === 4 ? 32 : 128;
  // Digits only, without leading zeros: `Number('')` is 0, and a /0 would trust every
  // address; a /08 is written by nobody who means /8, and the chart's schema refuses it.
  if (bitsText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(bitsText)) throw new Error(`bad prefix: ${cidr}`);
  let bits = bitsText === undefined ? width : Number(bitsText);
  // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) becomes its IPv4 form.
  if (addr.family === 4 && addrText!.includes(':') && bitsText !== undefined) bits -= 96;
  if (!Number.isInteger(bits) || bits < 0 || bits > width) throw new Error(`bad prefix: ${cidr}`);
  const value = addressValue(addr);
  const hostBits = BigInt(width - bits);
  const start = (value >> hostBits) << hostBits;
  const end = start + (1n << hostBits) - 1n;
  return { family: addr.family, start, end };
}
