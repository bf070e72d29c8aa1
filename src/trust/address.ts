// Peer and forwarded addresses, normalised so that every spelling of one host is
// classified alike: `::ffff:10.0.0.1` is 10.0.0.1, `::ffff:127.0.0.1` is loopback.
import ipaddr from 'ipaddr.js';

export type Address = { readonly family: 4; readonly value: number; readonly text: string } | {
  readonly family: 6;
  readonly value: bigint;
  readonly text: string;
};

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a bare IPv4 or IPv6 address (no port, no brackets, no zone); null when malformed. */
export function parseAddress(input: string): Address | null {
  const v4 = IPV4.exec(input);
  if (v4) return ipv4FromParts(v4);
  if (!input.includes(':') || input.includes('%')) return null;
  let parsed: ipaddr.IPv6;
  try {
    parsed = ipaddr.IPv6.parse(input);
  } catch {
    return null;
  }
  if (parsed.isIPv4MappedAddress()) {
    const v4addr = parsed.toIPv4Address();
    return ipv4(v4addr.octets);
  }
  let value = 0n;
  for (const part of parsed.parts) value = (value << 16n) | BigInt(part);
  return { family: 6, value, text: parsed.toString() };
}

function ipv4FromParts(m: RegExpExecArray): Address | null {
  const octets = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (octets.some((o) => o > 255)) return null;
  // Leading zeros are read as octal by some parsers: refuse them rather than guess.
  if ([m[1], m[2], m[3], m[4]].some((s) => s!.length > 1 && s!.startsWith('0'))) return null;
  return ipv4(octets);
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
