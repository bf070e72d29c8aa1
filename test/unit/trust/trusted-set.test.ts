import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { addressValue, isLoopback, isUnspecified, parseAddress, parseRange } from '../../../src/trust/address.js';
import { TrustRegistry } from '../../../src/trust/registry.js';
import { TrustedSet } from '../../../src/trust/trusted-set.js';

describe('parseAddress', () => {
  test.each([
    ['10.0.0.1', 4, '10.0.0.1'],
    ['::ffff:10.0.0.1', 4, '10.0.0.1'],
    ['::FFFF:10.0.0.1', 4, '10.0.0.1'],
    ['0:0:0:0:0:ffff:10.0.0.1', 4, '10.0.0.1'],
    ['::ffff:a00:1', 4, '10.0.0.1'],
    ['::ffff:127.0.0.1', 4, '127.0.0.1'],
    ['2001:DB8::1', 6, '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6, '2001:db8::1'],
    ['0:0:0:0:0:0:0:1', 6, '::1'],
    // RFC 5952: the longest zero run (the first on a tie) is `::`, a single zero is not.
    ['2001::1:0:0:0:1', 6, '2001:0:0:1::1'],
    ['2001:db8::1:1:1:1:1', 6, '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:0:0:1:0:0:1', 6, '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', 6, '2001:db8:0:1:1:1:1:1'],
    ['::1:0:0:0:0:0:0', 6, '0:1::'],
    ['1::', 6, '1::'],
    ['fe80:0000::0001', 6, 'fe80::1'],
    ['64:ff9b::192.0.2.1', 6, '64:ff9b::c000:201'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ])('%s is %s %s', (input, family, text) => {
    expect(parseAddress(input)).toMatchObject({ family, text });
  });

  test.each([
    '010.0.0.1', // octal to some parsers
    '10.0.0.01',
    '0x0a.0.0.1',
    '10.1',
    '167772161',
    '256.0.0.1',
    '10.0.0.1.',
    ' 10.0.0.1',
    '10.0.0.1:8080',
    '[2001:db8::1]',
    '[2001:db8::1]:443',
    'fe80::1%eth0',
    '2001:db8::g',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7::8',
    '1:2:3:4:5:6:7:1.2.3.4',
    '1::2::3',
    '12345::1',
    ':1::',
    '1:',
    ':::',
    '::1.2.3.4.5',
    'unknown',
    '',
  ])('%j is malformed', (input) => {
    expect(parseAddress(input)).toBeNull();
  });

  test('loopback and unspecified in every spelling', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1', '::ffff:7f00:1']) {
      expect(isLoopback(parseAddress(a)!)).toBe(true);
    }
    for (const a of ['0.0.0.0', '::', '::ffff:0.0.0.0', '0.1.2.3']) expect(isUnspecified(parseAddress(a)!)).toBe(true);
    for (const a of ['10.0.0.1', '2001:db8::1', '128.0.0.1', '::2']) {
      expect(isLoopback(parseAddress(a)!)).toBe(false);
      expect(isUnspecified(parseAddress(a)!)).toBe(false);
    }
  });
});

// Node's own inet_ntop is the reference for the text; the groups themselves for the value.
describe('parseAddress against Node for any spelling of an IPv6 address', () => {
  const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
  // Leave out IPv4-mapped and IPv4-compatible addresses: those are read as IPv4.
  const groups = fc.array(group, { minLength: 8, maxLength: 8 }).filter((g) => g.slice(0, 5).some((x) => x !== 0));
  const spelling = fc.record({ upper: fc.boolean(), pad: fc.boolean(), gapAt: fc.nat(7), gapLen: fc.nat(8) });

  function spell(g: number[], { upper, pad, gapAt, gapLen }: { upper: boolean; pad: boolean; gapAt: number; gapLen: number }): string {
    const hex = g.map((x) => (pad ? x.toString(16).padStart(4, '0') : x.toString(16))).map((x) => (upper ? x.toUpperCase() : x));
    let len = 0;
    while (gapAt + len < 8 && len < gapLen && g[gapAt + len] === 0) len++;
    if (len === 0) return hex.join(':');
    return `${hex.slice(0, gapAt).join(':')}::${hex.slice(gapAt + len).join(':')}`;
  }

  test('text, value and word boundaries agree', () => {
    fc.assert(
      fc.property(groups, spelling, (g, how) => {
        const input = spell(g, how);
        const a = parseAddress(input);
        expect(a).not.toBeNull();
        expect(a!.family).toBe(6);
        expect(a!.text).toBe(new SocketAddress({ address: input, family: 'ipv6' }).address);
        expect(addressValue(a!)).toBe(g.reduce((v, x) => (v << 16n) | BigInt(x), 0n));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parseRange', () => {
  test('IPv4, IPv6 and mapped CIDRs become inclusive ranges', () => {
    expect(parseRange('10.0.0.0/8')).toEqual({ family: 4, start: 0x0a000000n, end: 0x0affffffn });
    expect(parseRange('10.1.2.3/8')).toEqual({ family: 4, start: 0x0a000000n, end: 0x0affffffn });
    expect(parseRange('10.0.0.7')).toEqual({ family: 4, start: 0x0a000007n, end: 0x0a000007n });
    expect(parseRange('::ffff:10.0.0.0/104')).toEqual(parseRange('10.0.0.0/8'));
    expect(parseRange('0.0.0.0/0')).toEqual({ family: 4, start: 0n, end: 0xffffffffn });
    expect(parseRange('2001:db8::/32')).toEqual({
      family: 6,
      start: 0x20010db8n << 96n,
      end: (0x20010db8n << 96n) + (1n << 96n) - 1n,
    });
  });

  // A sloppy prefix must never widen trust: `Number('')` is 0, which would be a /0.
  test.each(['10.0.0.1/', '10.0.0.1/-0', '10.0.0.1/ 8', '10.0.0.1/8x', '10.0.0.1/33', '10.0.0.1/0x8', '10.0.0.0/8/1', '::ffff:10.0.0.0/8', '2001:db8::/129'])(
    '%j is refused',
    (cidr) => {
      expect(() => parseRange(cidr)).toThrow();
    },
  );
});

describe('TrustedSet', () => {
  const set = new TrustedSet(
    [
      { cidr: '10.0.0.0/8', source: 'static' },
      { cidr: '10.1.0.0/16', source: 'pods' },
      { cidr: '10.1.2.3', source: 'endpoints' },
      { cidr: '2001:db8::/32', source: 'static' },
      { cidr: '2001:db8:1::/48', source: 'nodes' },
      { cidr: '192.0.2.0/24', source: 'nodes' },
      { cidr: '192.0.2.128/25', source: 'nodes' },
    ],
    false,
  );

  test('overlapping ranges report every source that trusts an address', () => {
    expect(set.lookup('10.2.0.1')).toMatchObject({ trusted: true, sources: ['static'] });
    expect(set.lookup('10.1.0.1')).toMatchObject({ trusted: true, sources: ['pods', 'static'] });
    expect(set.lookup('10.1.2.3')).toMatchObject({ trusted: true, sources: ['endpoints', 'pods', 'static'] });
    expect(set.lookup('10.1.2.4')).toMatchObject({ trusted: true, sources: ['pods', 'static'] });
    expect(set.lookup('10.255.255.255')).toMatchObject({ trusted: true, sources: ['static'] });
    expect(set.lookup('192.0.2.200')).toMatchObject({ trusted: true, sources: ['nodes'] });
    expect(set.lookup('2001:db8:1::5')).toMatchObject({ trusted: true, sources: ['nodes', 'static'] });
    expect(set.lookup('2001:db8:2::5')).toMatchObject({ trusted: true, sources: ['static'] });
  });

  test('range edges are exact', () => {
    expect(set.lookup('9.255.255.255')).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
    expect(set.lookup('11.0.0.0')).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
    expect(set.lookup('192.0.1.255').trusted).toBe(false);
    expect(set.lookup('192.0.3.0').trusted).toBe(false);
    expect(set.lookup('2001:db7:ffff:ffff:ffff:ffff:ffff:ffff').trusted).toBe(false);
    expect(set.lookup('2001:db9::').trusted).toBe(false);
  });

  test('a mapped peer is classified as its IPv4 self', () => {
    expect(set.lookup('::ffff:10.1.2.3')).toMatchObject({ trusted: true, sources: ['endpoints', 'pods', 'static'] });
    expect(set.lookup('::ffff:11.0.0.1').trusted).toBe(false);
    // An IPv6 range never covers IPv4 peers, mapped or not.
    expect(new TrustedSet([{ cidr: '::/0', source: 's' }], false).lookup('::ffff:10.0.0.1').trusted).toBe(false);
  });

  test('loopback is trusted only when allowed AND listed, in every spelling', () => {
    const wide = [
      { cidr: '0.0.0.0/0', source: 's' },
      { cidr: '::/0', source: 's' },
    ];
    const listed = [
      { cidr: '127.0.0.0/8', source: 'static' },
      { cidr: '::1', source: 'static' },
    ];
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.255.0.1']) {
      expect(new TrustedSet(wide, false).lookup(a)).toMatchObject({ trusted: false, reason: 'loopback_not_allowed' });
      expect(new TrustedSet(listed, false).lookup(a)).toMatchObject({ trusted: false, reason: 'loopback_not_allowed' });
      expect(new TrustedSet([], true).lookup(a)).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
      expect(new TrustedSet(listed, true).lookup(a)).toMatchObject({ trusted: true, sources: ['static'] });
    }
    // The mesh proxy's address listed: the other containers of the pod stay untrusted.
    const mesh = new TrustedSet([{ cidr: '127.0.0.6', source: 'static' }], true);
    expect(mesh.lookup('127.0.0.6')).toMatchObject({ trusted: true });
    expect(mesh.lookup('127.0.0.1')).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
  });

  test('unspecified and malformed peers are never trusted', () => {
    const wide = new TrustedSet(
      [
        { cidr: '0.0.0.0/0', source: 's' },
        { cidr: '::/0', source: 's' },
      ],
      true,
    );
    for (const a of ['0.0.0.0', '::', '::ffff:0.0.0.0']) expect(wide.lookup(a)).toMatchObject({ trusted: false, reason: 'unspecified' });
    for (const a of ['', 'localhost', '010.0.0.1', '10.0.0.1:80']) expect(wide.lookup(a)).toMatchObject({ trusted: false, reason: 'malformed' });
  });

  test('IPv6 edges at every 32-bit word boundary', () => {
    const edges = new TrustedSet(
      [
        { cidr: 'fd00::ffff:ffff:0:0/96', source: 'low' },
        { cidr: 'fd00:0:0:1::/64', source: 'mid' },
        { cidr: 'fd00:1::/32', source: 'high' },
        { cidr: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124', source: 'top' },
      ],
      false,
    );
    expect(edges.lookup('fd00::ffff:ffff:0:0')).toMatchObject({ trusted: true, sources: ['low'] });
    expect(edges.lookup('fd00::ffff:ffff:ffff:ffff')).toMatchObject({ trusted: true, sources: ['low'] });
    expect(edges.lookup('fd00::ffff:fffe:ffff:ffff').trusted).toBe(false);
    expect(edges.lookup('fd00:0:0:1::')).toMatchObject({ trusted: true, sources: ['mid'] });
    expect(edges.lookup('fd00:0:0:1:ffff:ffff:ffff:ffff')).toMatchObject({ trusted: true, sources: ['mid'] });
    expect(edges.lookup('fd00:0:0:2::').trusted).toBe(false);
    expect(edges.lookup('fd00:0:ffff:ffff:ffff:ffff:ffff:ffff').trusted).toBe(false);
    expect(edges.lookup('fd00:1::')).toMatchObject({ trusted: true, sources: ['high'] });
    expect(edges.lookup('fd00:1:ffff:ffff:ffff:ffff:ffff:ffff')).toMatchObject({ trusted: true, sources: ['high'] });
    expect(edges.lookup('fd00:2::').trusted).toBe(false);
    expect(edges.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toMatchObject({ trusted: true, sources: ['top'] });
    expect(edges.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffef').trusted).toBe(false);
  });

  test('lookups agree with a BigInt range check for any IPv6 ranges and addresses', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffff }));
    const address = fc.array(group, { minLength: 8, maxLength: 8 }).map(
      (g) =>
        `${(g[0]! | 0x2000).toString(16)}:${g
          .slice(1)
          .map((x) => x.toString(16))
          .join(':')}`,
    );
    const range = fc.record({ at: address, bits: fc.integer({ min: 0, max: 128 }), source: fc.constantFrom('a', 'b', 'c') });
    fc.assert(
      fc.property(fc.array(range, { maxLength: 12 }), fc.array(address, { minLength: 1, maxLength: 20 }), (ranges, probes) => {
        const entries = ranges.map((r) => ({ cidr: `${r.at}/${r.bits}`, source: r.source }));
        const set = new TrustedSet(entries, false);
        const parsed = entries.map((e) => ({ ...parseRange(e.cidr), source: e.source }));
        // Probes include every range's first and last address and their outside neighbours.
        const edgeProbes = parsed.flatMap((r) => [r.start - 1n, r.start, r.end, r.end + 1n]).filter((v) => v >= 1n << 125n && v < 1n << 128n);
        const values = [...probes.map((p) => addressValue(parseAddress(p)!)), ...edgeProbes];
        for (const v of values) {
          const text = v.toString(16).padStart(32, '0').match(/.{4}/g)!.join(':');
          const expected = [...new Set(parsed.filter((r) => r.start <= v && v <= r.end).map((r) => r.source))].sort();
          const got = set.lookup(text);
          if (expected.length === 0) expect(got.trusted).toBe(false);
          else expect(got).toMatchObject({ trusted: true, sources: expected });
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('thousands of ranges stay a correct lookup', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({ cidr: `10.${i >> 8}.${i & 255}.0/25`, source: `s${i % 3}` }));
    const big = new TrustedSet(entries, false);
    expect(big.size).toBe(5000);
    for (let i = 0; i < 5000; i += 97) {
      expect(big.lookup(`10.${i >> 8}.${i & 255}.127`)).toMatchObject({ trusted: true, sources: [`s${i % 3}`] });
      expect(big.lookup(`10.${i >> 8}.${i & 255}.128`).trusted).toBe(false);
    }
  });
});

describe('TrustRegistry', () => {
  test('each source replaces its own entries, every change is announced, and a compiled set joins them with the static CIDRs', () => {
    const registry = new TrustRegistry();
    let changes = 0;
    registry.onChange(() => changes++);
    const trust = { cidrs: ['10.0.0.0/8'], allowLoopback: false };
    registry.expectSource('pods');
    expect(registry.unsyncedSources()).toEqual(['pods']);
    registry.setSource('pods', { synced: true, cidrs: ['192.0.2.0/24'] });
    const before = registry.compile(trust);
    registry.setSource('pods', { synced: true, cidrs: ['198.51.100.0/24'] });
    const after = registry.compile(trust);
    expect(changes).toBe(3);
    expect(before.lookup('192.0.2.1').trusted).toBe(true);
    expect(after.lookup('192.0.2.1').trusted).toBe(false);
    expect(after.lookup('198.51.100.1')).toMatchObject({ trusted: true, sources: ['pods'] });
    expect(after.lookup('10.0.0.1')).toMatchObject({ trusted: true, sources: ['static'] });
    expect(after.describeSources()).toBe('static (1 entry), pods (1 entry)');
    registry.removeSource('pods');
    expect(registry.compile(trust).lookup('198.51.100.1').trusted).toBe(false);
    expect(registry.unsyncedSources()).toEqual([]);
    expect(changes).toBe(4);
  });
});
