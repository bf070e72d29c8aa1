// Peer and forwarded addresses, normalised so that every spelling of one host is
// classified alike: `::ffff:10.0.0.1` is 10.0.0.1, `::ffff:127.0.0.1` is loopback.

export type Address = { readonly family: 4; readonly value: number; readonly text: string } | {
  readonly family: 6;
  readonly value: bigint;
  readonly text: string;
};

/** Parses a bare IPv4 or IPv6 address (no port, no brackets, no zone); null when malformed. */
export function parseAddress(input: string): Address | null {
  const v4 = dottedQuad(input);
  // Accepted only in canonical form, so the input is its own text.
  if (v4 >= 0) return { family: 4, value: v4, text: input };
  // `::a.b.c.d` (deprecated IPv4-compatible) is read as IPv4-mapped, as ipaddr.js did before.
  const compat = input.startsWith('::') ? dottedQuad(input.slice(2)) : -1;
  if (compat >= 0) return ipv4([compat >>> 24, (compat >>> 16) & 255, (compat >>> 8) & 255, compat & 255]);
  const g = ipv6Groups(input);
  if (!g) return null;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return ipv4([g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255]);
  }
  const word = (i: number) => BigInt(g[i]! * 65536 + g[i + 1]!);
  const value = (word(0) << 96n) | (word(2) << 64n) | (word(4) << 32n) | word(6);
  return { family: 6, value, text: ipv6Text(g) };
}

/**
 * The eight 16-bit groups of an IPv6 address (hex groups, at most one `::`, optionally a
 * dotted-quad tail), or null. Hand-written for the same reason as dottedQuad: a general
 * parser made IPv6 lookups 30x slower than IPv4 ones. No zones, brackets or ports.
 */
function ipv6Groups(s: string): number[] | null {
  const n = s.length;
  if (n < 2 || n > 45) return null;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let j = i;
    let v = 0;
    for (; j < n && j - i < 5; j++) {
      const h = hexValue(s.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
    }
    if (j < n && s.charCodeAt(j) === 46) {
      const q = dottedQuad(s.slice(i));
      if (q < 0) return null;
      groups.push(Math.floor(q / 65536), q % 65536);
      break;
    }
    if (j === i || j - i > 4) return null;
    groups.push(v);
    if (j === n) break;
    if (s.charCodeAt(j) !== 58) return null;
    if (s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return null;
      gap = groups.length;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === n) return null;
    }
  }
  if (gap < 0) return groups.length === 8 ? groups : null;
  if (groups.length > 7) return null;
  return [...groups.slice(0, gap), ...new Array<number>(8 - groups.length).fill(0), ...groups.slice(gap)];
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups (the first on a tie) as `::`. */
function ipv6Text(g: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (part: readonly number[]) => part.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
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

function ipv4(octets: readonly number[]): Address {
  const value = ((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!;
  return { family: 4, value, text: octets.join('.') };
}

export function isLoopback(a: Address): boolean {
  return a.family === 4 ? a.value >>> 24 === 127 : a.value === 1n;
}

export function isUnspecified(a: Address): boolean {
  return a.family === 4 ? a.value >>> 24 === 0 : a.value === 0n;
}

/** An address or CIDR as an inclusive range. Throws on malformed input (config is validated first). */
export function parseRange(cidr: string): { family: 4 | 6; start: bigint; end: bigint } {
  const [addrText, bitsText, extra] = cidr.split('/');
  const addr = parseAddress(addrText!.trim());
  if (!addr || extra !== undefined) throw new Error(`not an address: ${cidr}`);
  const width = addr.family === 4 ? 32 : 128;
  // Digits only: `Number('')` is 0, and a /0 would trust every address.
  if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) throw new Error(`bad prefix: ${cidr}`);
  let bits = bitsText === undefined ? width : Number(bitsText);
  // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) becomes its IPv4 form.
  if (addr.family === 4 && addrText!.includes(':') && bitsText !== undefined) bits -= 96;
  if (!Number.isInteger(bits) || bits < 0 || bits > width) throw new Error(`bad prefix: ${cidr}`);
  const value = BigInt(addr.value);
  const hostBits = BigInt(width - bits);
  const start = (value >> hostBits) << hostBits;
  const end = start + (1n << hostBits) - 1n;
  return { family: addr.family, start, end };
}
