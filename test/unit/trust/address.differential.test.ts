// The hand-written address parser (src/trust/address.ts, kept for the trusted-set lookup
// rate docs/decisions/0004-hand-written-address-parser.md sets) held against ipaddr.js over every class of input: where
// both accept an address they must read the same host, every input ipaddr.js refuses is
// refused, and the inputs ipaddr.js accepts and the sidecar does not are exactly the
// spellings it refuses on purpose (IPv4 other than four decimal parts without leading
// zeros, which ipaddr.js reads as octal, hex or short forms; IPv6 zone ids).
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { addressValue, parseAddress } from '../../../src/trust/address.js';

/** ipaddr.js's reading of `input` as the family and value the sidecar compares, or null. */
function reference(input: string): { family: 4 | 6; value: bigint } | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(input);
  } catch {
    return null;
  }
  // Mapped (and IPv4-compatible, which ipaddr.js reads as mapped) addresses are IPv4 hosts.
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const value = parsed.toByteArray().reduce((v, b) => (v << 8n) | BigInt(b), 0n);
  return { family: parsed.kind() === 'ipv4' ? 4 : 6, value };
}

function ours(input: string): { family: 4 | 6; value: bigint } | null {
  const a = parseAddress(input);
  return a === null ? null : { family: a.family, value: addressValue(a) };
}

/** What the sidecar refuses on purpose though ipaddr.js reads it. */
function refusedOnPurpose(input: string): boolean {
  if (input.includes('%')) return true;
  const tail = input.slice(input.lastIndexOf(':') + 1);
  if (!tail.includes('.') && input.includes(':')) return false;
  const parts = tail.split('.');
  return parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p));
}

function agree(input: string): void {
  const mine = ours(input);
  const theirs = reference(input);
  if (mine !== null) {
    expect(theirs).toEqual(mine);
  } else if (theirs !== null) {
    expect({ input, refusedOnPurpose: refusedOnPurpose(input) }).toEqual({ input, refusedOnPurpose: true });
  }
}

const octet = fc.integer({ min: 0, max: 255 });
const quad = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
const groups = fc.array(group, { minLength: 8, maxLength: 8 });

function spellV6(g: number[], upper: boolean, pad: boolean, gapAt: number, gapLen: number): string {
  const hex = g.map((x) => (pad ? x.toString(16).padStart(4, '0') : x.toString(16))).map((x) => (upper ? x.toUpperCase() : x));
  let len = 0;
  while (gapAt + len < 8 && len < gapLen && g[gapAt + len] === 0) len++;
  if (len === 0) return hex.join(':');
  return `${hex.slice(0, gapAt).join(':')}::${hex.slice(gapAt + len).join(':')}`;
}
const v6 = fc.tuple(groups, fc.boolean(), fc.boolean(), fc.nat(7), fc.nat(8)).map(([g, u, p, at, len]) => spellV6(g, u, p, at, len));

const classes: [string, fc.Arbitrary<string>][] = [
  ['canonical IPv4', quad],
  [
    'IPv4 with leading zeros, in fewer parts or in hex',
    fc.oneof(
      fc.tuple(octet, octet, octet, octet).map((o) => o.map((x) => x.toString().padStart(3, '0')).join('.')),
      fc.tuple(octet, fc.integer({ min: 0, max: 0xffffff })).map(([a, b]) => `${a}.${b}`),
      fc.tuple(octet, octet, octet, octet).map((o) => o.map((x) => `0x${x.toString(16)}`).join('.')),
      fc.integer({ min: 0, max: 0xffffffff }).map(String),
    ),
  ],
  ['IPv6 in any spelling', v6],
  ['IPv4-mapped and IPv4-compatible IPv6', fc.tuple(quad, fc.constantFrom('::ffff:', '::FFFF:', '0:0:0:0:0:ffff:', '::', '0::')).map(([q, p]) => p + q)],
  [
    'IPv6 with a dotted tail',
    fc.tuple(fc.array(group, { minLength: 6, maxLength: 6 }), quad).map(([g, q]) => `${g.map((x) => x.toString(16)).join(':')}:${q}`),
  ],
  ['IPv6 with a zone, brackets or a port', fc.tuple(v6, fc.constantFrom('%eth0', '%1', ']', ':80', '/64')).map(([a, s]) => (s === ']' ? `[${a}]` : a + s))],
  ['strings over the address alphabet', fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%[]x/ '.split('')), maxLength: 46 })],
  ['any string', fc.string({ maxLength: 50 })],
];

test.each(classes)('%s: the two parsers agree, or the difference is one refused on purpose', (_name, inputs) => {
  fc.assert(
    fc.property(inputs, (input) => agree(input)),
    { numRuns: 3000 },
  );
});

test('the spellings refused on purpose are ones ipaddr.js reads, and reads as another host than a person would', () => {
  expect(reference('010.0.0.1')).toEqual({ family: 4, value: 0x08000001n });
  expect(reference('127.1')).toEqual({ family: 4, value: 0x7f000001n });
  expect(reference('fe80::1%eth0')).not.toBeNull();
  for (const input of ['010.0.0.1', '127.1', '0x7f.0.0.1', '2130706433', 'fe80::1%eth0']) expect(parseAddress(input)).toBeNull();
});
